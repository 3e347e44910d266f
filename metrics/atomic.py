"""Atomic file writes: write to a temporary name in the same folder, then rename into place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers infer the format); on
    success it is flushed to disk and replaces ``path``, on error it is removed and ``path``
    keeps its old content."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp-{secrets.token_hex(4)}{target.suffix}")
    try:
        yield tmp
        if tmp.is_file():  # on disk before the rename: after a crash, the old or the new
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
