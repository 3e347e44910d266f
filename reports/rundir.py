"""Reading a run directory (``.notes/run-contract.md``): only stored files, never a model. The
per-video table is required; every other piece is optional: missing, or damaged in any part the
report reads, it is left out with a note."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from metrics.errors import BenchError

PER_VIDEO_COLUMNS = {"arm", "sample", "seed", "metric", "family", "value", "higher_is_better"}
SERIES_COLUMNS = {"arm", "sample", "seed", "metric", "index", "value"}
UNAVAILABLE_COLUMNS, LOSS_COLUMNS = {"metric", "reason"}, {"step", "loss"}
VIDEO_NAME = re.compile(r"(?P<sample>.+)_seed(?P<seed>-?\d+)\.mp4")
NULL, NUMBER = type(None), (int, float)
# The parts of each optional JSON file the report reads, in ``check``'s terms; others are free.
RECORD = {
    "config": {"model": {"base_length": (int, NULL)}, "conditions": dict},
    "versions": dict,
    "hardware": dict,
    "earlier_environments": [{"versions": (dict, NULL)}],
}
TIMINGS = {"stages": dict, "units": {"*": dict}}
MANIFEST = {"generation": {"frames": int}, "weights_sha256": {"*": str}}
TRAINING = {"config": {"objective": {"loss_weight": str}}, "parameters": {"*": NUMBER},
            "launch": dict}
JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number",
              bool: "true/false", NULL: "null"}


@dataclass
class Run:
    """What the report shows, as stored; ``notes`` lists the optional pieces missing or left
    out."""

    root: Path
    per_video: pd.DataFrame
    series: pd.DataFrame | None = None
    unavailable: pd.DataFrame | None = None
    record: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    losses: dict[str, pd.DataFrame] = field(default_factory=dict)
    videos: dict[str, dict[tuple[str, int], Path]] = field(default_factory=dict)
    conditions: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def arms(self) -> list[str]:
        """Arms in the order the run lists them (first appearance in the table)."""
        return list(pd.unique(self.per_video["arm"]))

    @property
    def base_length(self) -> int | None:
        """L, the base model's length, from the run's config (None when not recorded)."""
        length = self.record.get("config", {}).get("model", {}).get("base_length")
        return int(length) if length is not None else None


def load_run(run_dir: Path) -> Run:
    """Read ``run_dir``; a missing or unreadable per-video table is a ``BenchError``."""
    root = Path(run_dir)
    if not root.is_dir():
        raise BenchError(root, "no such run directory", "pass the --out folder of 'bench run'")
    run = Run(root, read_per_video(root / "results" / "per_video.parquet"))
    run.series = _optional(run, "results/series.parquet", _series(run.arms), "no per-frame curves")
    unavailable = _table(pd.read_csv, UNAVAILABLE_COLUMNS)
    run.unavailable = _optional(run, "results/unavailable.csv", unavailable, None)
    run.record = _optional(run, "run.json", _json(RECORD), "no config, versions or hardware") or {}
    run.timings = _optional(run, "timings.json", _json(TIMINGS), "no time per stage") or {}
    for arm in run.arms:
        folder = root / "generate" / arm
        manifest = _optional(run, f"generate/{arm}/manifest.json", _json(MANIFEST), None)
        if manifest:
            run.manifests[arm] = manifest
        rows = run.per_video[run.per_video["arm"] == arm]
        scored = set(zip(rows["sample"], rows["seed"].astype(int), strict=True))
        videos = {}  # only the videos the results are about: an earlier config's may remain
        for path in sorted(folder.glob("*.mp4")):
            match = VIDEO_NAME.fullmatch(path.name)
            if match and (match["sample"], int(match["seed"])) in scored:
                videos[match["sample"], int(match["seed"])] = path
        if videos:
            run.videos[arm] = videos
        tune = root / "tune" / arm
        if (tune / "loss.csv").is_file():
            loss = _table(pd.read_csv, LOSS_COLUMNS, LOSS_COLUMNS)
            run.losses[arm] = _optional(run, f"tune/{arm}/loss.csv", loss, None)
            training = _optional(run, f"tune/{arm}/training.json", _json(TRAINING), None)
            run.training[arm] = training or {}
    run.conditions = {p.stem: p for p in sorted((root / "conditions").glob("*.png"))}
    missing_videos = [arm for arm in run.arms if arm not in run.videos]
    if missing_videos:
        run.notes.append(f"no generated videos for {', '.join(missing_videos)}: no frame strips")
    return run


def read_per_video(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BenchError(
            path,
            "no per-video results",
            "run 'python -m bench run' into this folder first (its aggregate stage writes them)",
        )
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise BenchError(
            path, f"unreadable ({type(err).__name__})", "rerun the aggregate stage"
        ) from None
    missing = PER_VIDEO_COLUMNS - set(table.columns)
    if missing:
        raise BenchError(path, f"lacks columns {sorted(missing)}", "rerun the aggregate stage")
    if table.empty:
        raise BenchError(path, "holds no rows", "rerun the evaluate and aggregate stages")
    table["higher_is_better"] = table["higher_is_better"].astype("boolean")
    defaults = {"status": "ok", "detail": "", "provenance": "{}"}
    return table.assign(**{k: v for k, v in defaults.items() if k not in table})


class Unusable(Exception):
    """A readable optional file whose content is not what the report reads."""


def check(data, spec, where: str = "") -> None:
    """Raise ``Unusable`` naming the first part of parsed JSON ``data`` not of ``spec``: a type
    (or tuple of types); {key: spec} for an object whose listed keys (every key for "*") are of
    their spec where present; [spec] for a list of values of that spec."""
    kind = dict if isinstance(spec, dict) else list if isinstance(spec, list) else spec
    if not isinstance(data, kind):
        raise Unusable(f"has {where} of the wrong type ({JSON_TYPES[type(data)]})")
    if isinstance(spec, dict):
        for key, value in data.items():
            if (inner := spec.get(key, spec.get("*"))) is not None:
                check(value, inner, f"{where}.{key}" if where else key)
    elif isinstance(spec, list):
        for i, item in enumerate(data):
            check(item, spec[0], f"{where}[{i}]")


def _json(spec: dict):
    """A reader of a JSON object whose parts the report reads are of ``spec`` (``check``)."""

    def read(path: Path) -> dict:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise Unusable("is not a JSON object")
        check(data, spec)
        return data

    return read


def _table(reader, columns: set[str], numeric: set[str] = frozenset()):
    """``reader`` that checks the table has ``columns``, and numbers in its ``numeric`` ones."""

    def read(path: Path) -> pd.DataFrame:
        table = reader(path)
        missing = columns - set(table.columns)
        if missing:
            raise Unusable(f"lacks columns {sorted(missing)}")
        text = [c for c in numeric if len(table) and not pd.api.types.is_numeric_dtype(table[c])]
        if text:
            raise Unusable(f"has non-numeric columns {sorted(text)}")
        return table

    return read


def _series(arms: list[str]):
    """A reader of the per-frame series of ``arms`` (the arms of the per-video table)."""
    read_table = _table(pd.read_parquet, SERIES_COLUMNS, {"index", "value"})

    def read(path: Path) -> pd.DataFrame:
        table = read_table(path)
        stray = set(table["arm"]) - set(arms)
        if stray:
            raise Unusable(f"has arms the per-video results lack {sorted(map(str, stray))}")
        return table

    return read


def _optional(run: Run, relative: str, reader, missing_note: str | None):
    """``reader(path)``, or None with a note when the file is missing (if ``missing_note``),
    unreadable or unusable (always)."""
    path = run.root / relative
    if not path.is_file():
        if missing_note:
            run.notes.append(f"{relative} is missing: {missing_note}")
        return None
    try:
        return reader(path)
    except Unusable as err:
        run.notes.append(f"{relative} {err}; left out")
    except Exception as err:  # any damaged optional file: report it, show the rest
        run.notes.append(f"{relative} is unreadable ({type(err).__name__}); left out")
    return None
