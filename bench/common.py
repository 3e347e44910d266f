"""Helpers shared by the sub-commands: device checks and atomic table writes."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from metrics.atomic import atomic_path
from metrics.errors import BenchError

TABLE_SUFFIXES = (".csv", ".parquet")


def check_table_path(path: str | None) -> Path | None:
    """Validate an output table path before any compute."""
    if path is None:
        return None
    out = Path(path)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise BenchError(out, "unsupported output type", "use a .csv or .parquet file name")
    if out.exists() and out.is_dir():
        raise BenchError(out, "is a folder", "give a file name ending in .csv or .parquet")
    check_writable(out.parent)
    return out


def check_writable(folder: Path) -> None:
    """Write a file in ``folder`` (made for the test and removed again if missing), before any
    compute, so that a path that cannot take the results fails now rather than after the
    work."""
    import shutil
    import tempfile

    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise BenchError(folder, f"cannot be written ({err.strerror or err})",
                         "choose a folder you can write to") from None
    finally:
        if missing and missing[-1].is_dir():
            shutil.rmtree(missing[-1], ignore_errors=True)


def nothing_runs(reason: str) -> str:
    """A missing-weights reason without its closing "the other metrics still run", for a
    command that stops on it."""
    return re.sub(r"; [^;]*the other metrics still run$", "", reason)


def check_at_least(flag: str, value: float, low: float) -> None:
    """A numeric option below its minimum is a setup error, raised before any work."""
    if value < low:
        raise BenchError(flag, f"must be >= {low}, got {value}", f"use {low} or more")


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run here (the tools run on cpu, cuda or cuda:N), or None."""
    import torch

    if device == "cpu":
        return None
    if not re.fullmatch(r"cuda(:\d+)?", device):
        return "not a device the tools run on"
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine"
    index, visible = int(device.partition(":")[2] or 0), torch.cuda.device_count()
    return f"only {visible} GPUs visible" if index >= visible else None


def check_device(device: str) -> str:
    problem = device_problem(device)
    if problem:
        raise BenchError(device, problem, "use --device cpu, cuda or cuda:N")
    return device


def use_device(device: str) -> str:
    """``check_device``, then make a ``cuda:N`` the current device, so that synchronisation
    and the memory counters (which default to the current device) measure the one named."""
    import torch

    check_device(device)
    if device.startswith("cuda:"):  # a bare "cuda" is the current device already
        torch.cuda.set_device(torch.device(device))
    return device


def read_table(path: Path) -> pd.DataFrame:
    """A table ``write_table`` wrote (CSV or Parquet, by suffix)."""
    return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet atomically."""
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
