"""What an interrupted ``bench eval`` keeps and ``--resume`` continues: the rows of the videos it
finished beside the table (``NAME.partial.csv``; the series beside theirs) and the settings that
made them (``NAME.partial.json``), never over a complete table an earlier run wrote."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from metrics.atomic import atomic_path
from metrics.errors import BenchError

SERIES_COLUMNS = ["video", "metric", "index", "value"]
COUNTS = ("frames", "height", "width")  # integers, read back from CSV as floats
NOT_SETTINGS = ("paths", "out", "series_out", "set_out", "resume", "list_metrics", "run",
                "command")
SAVE_EVERY_S = 10.0  # a run killed outright (out of memory, SIGKILL) loses at most this much


def partial(path: Path | None) -> Path | None:
    return path.with_name(f"{path.stem}.partial{path.suffix}") if path else None


def record_of(out: Path) -> Path:
    return out.with_name(f"{out.stem}.partial.json")


def settings(args: argparse.Namespace) -> dict:
    """Everything that decides a video's row and series (not where they are written)."""
    found = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_SETTINGS}
    if isinstance(found.get("metrics"), str):  # the same names in another order are the same
        found["metrics"] = ",".join(sorted({m.strip() for m in found["metrics"].split(",")}))
    return {**found, "series": bool(args.series_out)}


def keep(args: argparse.Namespace, out: Path | None) -> None:
    """Record the settings of the partial table just written beside ``out``."""
    if out:
        with atomic_path(record_of(out)) as tmp:
            tmp.write_text(json.dumps(settings(args), indent=1))


class Autosave:
    """Called after each video: writes the rows and series finished so far beside the table
    (at most every ``SAVE_EVERY_S`` seconds) with their settings, for ``--resume`` to continue
    from after a kill that leaves no chance to write them at the end."""

    def __init__(self, args: argparse.Namespace, out: Path, series_out: Path | None):
        self.args, self.out, self.series_out = args, out, series_out
        self.last = time.monotonic()

    def __call__(self, rows: list[dict], series: list[dict]) -> None:
        if time.monotonic() - self.last >= SAVE_EVERY_S:
            save(self.args, rows, series, self.out, self.series_out)
            self.last = time.monotonic()


def save(args: argparse.Namespace, rows: list[dict], series: list[dict], out: Path,
         series_out: Path | None) -> None:
    """Write the partial table (and series) beside ``out`` and record their settings."""
    import pandas as pd

    from bench.common import write_table

    write_table(pd.DataFrame(rows), partial(out))
    if series_out:
        write_table(pd.DataFrame(series, columns=SERIES_COLUMNS), partial(series_out))
    keep(args, out)


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
    named = {_same_file(path): str(path) for path in videos}  # as the PATHs name them now
    renamed = {v: named[k] for v in rows["video"].unique() if (k := _same_file(v)) in named}
    done = rows[rows["video"].isin(renamed) & rows["frames"].notna()]
    kept = [
        {k: int(v) if k in COUNTS else v for k, v in row.items() if not _missing(v)}
        | {"video": renamed[row["video"]]}
        for row in done.to_dict("records")
    ]
    if points is None:
        return kept, []
    points = points[points["video"].isin(set(done["video"]))]
    return kept, points.assign(video=points["video"].map(renamed)).to_dict("records")


def clear(out: Path | None, series_out: Path | None) -> None:
    """A complete table replaces the partial one: drop it, its series and its record."""
    for path in (partial(out), partial(series_out), out and record_of(out)):
        if path:
            path.unlink(missing_ok=True)


def _same_file(path: str | Path) -> str:
    """One spelling of a path (``videos/a.mp4``, ``./videos/a.mp4`` and its absolute path)."""
    return str(Path(path).resolve())


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
