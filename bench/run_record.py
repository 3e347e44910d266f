"""The run's own records, ``run.json`` (config, its hash, versions, hardware, whether the last
run into the directory finished) and ``timings.json``, and the guard against mixing two runs in
one directory.

``versions`` and ``hardware`` are those of the runs that computed the results: a rerun that
only reads its cache keeps them, and one that computes under others keeps the old ones in
``earlier_environments``."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench.run_cache import read_record
from bench.run_config import RunConfig
from metrics.atomic import atomic_path
from metrics.errors import BenchError

PACKAGES = (
    "exsvd-bench",
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "accelerate",
    "numpy",
    "opencv-python-headless",
    "open-clip-torch",
    "pandas",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_run_dir(run_dir: Path, config: RunConfig, *, resume: bool, force: bool) -> None:
    """Refuse a directory that holds another run (unless ``resume`` / ``force``) or other
    files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise BenchError(run_dir, "is a file, not a run directory", "choose a folder for --out")
    path = run_dir / "run.json"
    if path.is_file():
        old = read_record(path)
        if old is None and not (resume or force):
            raise BenchError(path, "unreadable", "pass --resume to write it anew (what is cached "
                             "under these settings is kept), or choose another --out")
        if old and old.get("config_hash") != config.digest() and not (resume or force):
            raise BenchError(
                run_dir,
                f"holds a run with another config "
                f"({_differences(old.get('config', {}), config)})",
                "pass --resume to update it (only the units these settings affect are "
                "recomputed), or choose another --out",
            )
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise BenchError(
            run_dir, "is not empty and holds no run.json", "choose a new or empty --out"
        )


def _differences(old: dict, config: RunConfig, shown: int = 3) -> str:
    def flat(data: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in data.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = value
        return out

    before, after = flat(old), flat(config.to_dict())
    changed = [k for k in after if before.get(k) != after[k]]
    listed = [f"{k}: {before.get(k)!r} -> {after[k]!r}" for k in changed[:shown]]
    return ", ".join(listed) + (f" and {len(changed) - shown} more" if len(changed) > shown else "")


def write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


ENVIRONMENT = ("versions", "hardware", "earlier_environments")


def write_run_json(run_dir: Path, config: RunConfig, processes: int) -> None:
    """At the start of a run: its config, and ``finished`` null until ``mark_finished``."""
    old = read_record(run_dir / "run.json") or {}
    same = old.get("config_hash") == config.digest()
    environment = (
        {k: old[k] for k in ENVIRONMENT if k in old}
        if "versions" in old
        else {"versions": versions(), "hardware": hardware(processes)}
    )
    write_json(
        run_dir / "run.json",
        {
            "config": config.to_dict(),
            "config_hash": config.digest(),
            "created": old["created"] if same and "created" in old else now(),
            "finished": None,
            **environment,
        },
    )


def mark_finished(run_dir: Path, processes: int, computed: bool) -> None:
    """At the end of a run: when, and (if it computed anything) the environment it ran in."""
    record = read_record(run_dir / "run.json") or {}
    if computed:
        current = {"versions": versions(), "hardware": hardware(processes)}
        recorded = {k: record.get(k) for k in ("versions", "hardware")}
        earlier = record.get("earlier_environments", [])
        if recorded != current and recorded["versions"] and recorded not in earlier:
            record["earlier_environments"] = [*earlier, recorded]
        record.update(current)
    record["finished"] = now()
    write_json(run_dir / "run.json", record)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "exsvd-bench commit": source_commit()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def source_commit() -> str:
    """The git commit of this checkout (and whether it has uncommitted changes), or why not."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit[:12] + (" + uncommitted changes" if dirty else "")


def hardware(processes: int) -> dict:
    import torch

    gpus = [
        f"{torch.cuda.get_device_name(i)} "
        f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
        for i in range(torch.cuda.device_count())
    ]
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "processes": processes,
    }
