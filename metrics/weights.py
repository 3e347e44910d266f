"""Every pretrained file the project uses, and the one place that resolves it.

Resolution order for a weight NAME: explicit path, environment variable, the project weights
dir (``$EXSVD_WEIGHTS_DIR`` or ``~/.cache/exsvd-bench/weights``), the owning library's cache,
then a download when online (set ``EXSVD_OFFLINE=1`` to skip it). Each candidate file is checked
against the recorded checksum before use.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metrics.errors import BenchError, WeightsNotFoundError


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained file: where it comes from and how to recognise it."""

    name: str
    filename: str
    url: str
    sha256_prefix: str  # torchvision names files <stem>-<first 8 hex digits of sha256>.pth
    library_cache: Callable[[], Path]
    used_by: str
    alternative: str = ""  # a weight-free way around, e.g. "; or use --flow dis"

    @property
    def env_var(self) -> str:
        return "EXSVD_WEIGHTS_" + self.name.upper()


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified file on disk and where it was found."""

    name: str
    path: Path
    source: str
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.path.name}, sha256 {self.sha256[:12]}, from {self.source})"


def _torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="raft_large",
            filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            sha256_prefix="ff5fadd5",
            library_cache=_torch_hub_checkpoints,
            used_by="optical flow (--flow raft_large, and --flow auto when present)",
            alternative="; or use --flow dis (weight-free)",
        ),
        WeightSpec(
            name="raft_small",
            filename="raft_small_C_T_V2-01064c6d.pth",
            url="https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
            sha256_prefix="01064c6d",
            library_cache=_torch_hub_checkpoints,
            used_by="optical flow (--flow raft_small)",
            alternative="; or use --flow dis (weight-free)",
        ),
    )
}


def weights_dir() -> Path:
    """``$EXSVD_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/exsvd-bench/weights``."""
    if os.environ.get("EXSVD_WEIGHTS_DIR"):
        return Path(os.environ["EXSVD_WEIGHTS_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "exsvd-bench" / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(spec: WeightSpec, path: Path, source: str) -> ResolvedWeights:
    digest = sha256_of(path)
    if not digest.startswith(spec.sha256_prefix):
        raise BenchError(
            path,
            f"checksum mismatch for {spec.name}: sha256 {digest[:12]}..., "
            f"expected {spec.sha256_prefix}...",
            f"delete the file and get {spec.filename} again",
        )
    return ResolvedWeights(spec.name, path, source, digest)


def _download(spec: WeightSpec, dest: Path) -> None:
    import torch.hub

    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(spec.url, str(dest), hash_prefix=None, progress=True)


def get_spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise BenchError(name, "unknown weights", f"known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def resolve(name: str, path: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find, verify and return the file for ``name``, or raise WeightsNotFoundError."""
    spec = get_spec(name)
    searched: list[str] = []
    candidates: list[tuple[str, Path | None, str]] = [
        ("explicit path", Path(path).expanduser() if path else None, "not given"),
        (
            f"${spec.env_var}",
            Path(os.environ[spec.env_var]).expanduser() if os.environ.get(spec.env_var) else None,
            "unset",
        ),
        ("project weights dir", weights_dir() / spec.filename, ""),
        ("library cache", spec.library_cache() / spec.filename, ""),
    ]
    for source, candidate, why_none in candidates:
        if candidate is None:
            searched.append(f"{source} {why_none}")
        elif candidate.is_file():
            return _verified(spec, candidate, source)
        else:
            searched.append(f"{candidate} missing")
            if source in ("explicit path", f"${spec.env_var}"):
                raise WeightsNotFoundError(
                    candidate,
                    f"{spec.name} weights file does not exist (given by {source})",
                    f"point it at a copy of {spec.filename}",
                )
    if os.environ.get("EXSVD_OFFLINE"):
        searched.append("download skipped (EXSVD_OFFLINE set)")
    else:
        dest = weights_dir() / spec.filename
        part = dest.with_name(dest.name + ".part")
        try:
            _download(spec, part)
            resolved = _verified(spec, part, "download")
        except OSError as err:  # URLError, DNS failure, refused connection, disk full
            searched.append(f"download failed ({getattr(err, 'reason', err)})")
        else:
            part.replace(dest)
            return ResolvedWeights(spec.name, dest, "download", resolved.sha256)
        finally:
            part.unlink(missing_ok=True)
    raise WeightsNotFoundError(
        spec.name,
        f"weights for {spec.used_by} not found; searched: {'; '.join(searched)}",
        f"download {spec.url} and set {spec.env_var}=/path/to/{spec.filename} "
        f"or copy it into {weights_dir()}{spec.alternative}",
    )
