"""Units of work and their cache. A unit's key hashes everything that determines it (settings,
upstream keys, input checksums); a done unit has a record beside its outputs holding the key and
the sha256 of every output file, written last and atomically. A unit counts as done only when
its record has the current key and every output still has its recorded checksum."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from metrics.atomic import atomic_path

FORMAT = 1  # bump when a stage's outputs change meaning: every unit is recomputed


def unit_key(*parts) -> str:
    """sha256 of the parts as canonical JSON."""
    blob = json.dumps([FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Unit:
    """One arm x stage x sample: ``name`` orders and labels it, ``data`` is what computing it
    needs (sample, seed, ...)."""

    stage: str
    name: str
    arm: str
    key: str
    record: Path
    outputs: tuple[Path, ...]
    data: dict = field(default_factory=dict, compare=False)


class Checksums:
    """sha256 of files, remembered per process by (path, size, mtime, inode) in ``memo_dir``,
    so that large unchanged files (a base model, tuned weights) are read once per run dir."""

    def __init__(self, memo_dir: Path, process: int = 0):
        self.memo = memo_dir / f"sha256-{process}.json"
        self._known: dict[str, list] = {}
        for path in sorted(memo_dir.glob("sha256-*.json")):
            try:
                self._known.update(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue

    def file(self, path: Path) -> str:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        known = self._known.get(str(path.resolve()))
        if known and known[:3] == stamp:
            return known[3]
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
        self._known[str(path.resolve())] = [*stamp, digest.hexdigest()]
        return digest.hexdigest()

    def tree(self, path: Path, base: Path) -> dict[str, str]:
        """Checksums of a file or of every visible file under a folder, named relative to
        ``base``; FileNotFoundError if it is not there."""
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
            )
        else:
            raise FileNotFoundError(path)
        return {os.path.relpath(f, base): self.file(f) for f in files}

    def save(self) -> None:
        with atomic_path(self.memo) as tmp:
            tmp.write_text(json.dumps(self._known))


def folder_stamp(folder: Path) -> str:
    """A cheap identity of a (possibly huge) folder of videos: the names, sizes and mtimes of
    the files ``find_videos`` reads (a hidden or unrelated file changes nothing)."""
    from metrics.video_io import find_videos

    files = []
    for path in find_videos(folder):
        inside = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        files += [f for f in inside if not f.name.startswith(".")]
    entries = sorted(
        (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files
    )
    return unit_key(entries)


def read_record(path: Path) -> dict | None:
    """A done record, or None where it is missing or damaged (not a JSON object included)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def valid_record(unit: Unit, checksums: Checksums) -> dict | None:
    """The unit's record if it is done with the current key and intact outputs, else None."""
    record = read_record(unit.record)
    if not record or record.get("key") != unit.key:
        return None
    try:
        current = outputs_of(unit, checksums)
    except OSError:
        return None
    return record if current == record.get("outputs") else None


def outputs_of(unit: Unit, checksums: Checksums) -> dict[str, str]:
    found: dict[str, str] = {}
    for output in unit.outputs:
        found.update(checksums.tree(output, unit.record.parent))
    return found


def write_record(unit: Unit, checksums: Checksums, **extra) -> dict:
    """Mark the unit done: its key and output checksums, written atomically, last."""
    record = {"unit": unit.name, "key": unit.key, "outputs": outputs_of(unit, checksums), **extra}
    with atomic_path(unit.record) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record
