"""What an interrupted ``bench eval`` keeps and ``--resume`` continues: the rows of the videos it
finished beside the table (``NAME.partial.csv``; the series beside theirs) and the settings that
made them (``NAME.partial.json``), never over a complete table an earlier run wrote."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from metrics.atomic import atomic_path
from metrics.errors import BenchError

COUNTS = ("frames", "height", "width")  # integers, read back from CSV as floats
NOT_SETTINGS = ("paths", "out", "series_out", "set_out", "resume", "list_metrics", "run",
                "command")


def partial(path: Path | None) -> Path | None:
    return path.with_name(f"{path.stem}.partial{path.suffix}") if path else None


def record_of(out: Path) -> Path:
    return out.with_name(f"{out.stem}.partial.json")


def settings(args: argparse.Namespace) -> dict:
    """Everything that decides a video's row and series (not where they are written)."""
    found = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_SETTINGS}
    return {**found, "series": bool(args.series_out)}


def keep(args: argparse.Namespace, out: Path | None) -> None:
    """Record the settings of the partial table just written beside ``out``."""
    if out:
        with atomic_path(record_of(out)) as tmp:
            tmp.write_text(json.dumps(settings(args), indent=1))


def resumed(args: argparse.Namespace, out: Path, series_out: Path | None,
            videos: list[Path]) -> tuple[list[dict], list[dict]]:
    """The rows and series an interrupted run with these settings finished for ``videos``
    (a video it could not read is read again); nothing when there is no partial table."""
    from bench.common import read_table

    table, record = partial(out), record_of(out)
    if not (table.is_file() and record.is_file()):
        return [], []
    try:
        made_with = json.loads(record.read_text())
        rows = read_table(table)
        points = read_table(partial(series_out)) if series_out else None
    except (OSError, ValueError) as err:
        raise BenchError(table, f"cannot be read to resume ({err})",
                         "delete it and rerun without --resume") from None
    changed = [k for k, v in settings(args).items() if made_with.get(k) != v]
    if changed:
        raise BenchError(table, f"was made with other settings ({', '.join(changed)} differ)",
                         "resume with those settings, or rerun without --resume")
    wanted = {str(path) for path in videos}
    done = rows[rows["video"].isin(wanted) & rows["frames"].notna()]
    kept = [
        {k: int(v) if k in COUNTS else v for k, v in row.items() if not _missing(v)}
        for row in done.to_dict("records")
    ]
    if points is None:
        return kept, []
    return kept, points[points["video"].isin(set(done["video"]))].to_dict("records")


def clear(out: Path | None, series_out: Path | None) -> None:
    """A complete table replaces the partial one: drop it, its series and its record."""
    for path in (partial(out), partial(series_out), out and record_of(out)):
        if path:
            path.unlink(missing_ok=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
