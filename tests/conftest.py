"""Test setup: never touch the network or the user's caches.

Every weights location points at empty temp folders and downloads/conversions are off for the
whole session, so no test depends on what happens to be cached on the machine. Tests that can
use real pretrained files read them from ``EXSVD_TEST_WEIGHTS_DIR`` and skip otherwise.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(2)

WEIGHT_ENV = (
    "EXSVD_WEIGHTS_RAFT_LARGE",
    "EXSVD_WEIGHTS_RAFT_SMALL",
    "EXSVD_WEIGHTS_CLIP_VIT_B32",
    "EXSVD_WEIGHTS_LPIPS_ALEX",
    "EXSVD_WEIGHTS_LPIPS_VGG",
    "EXSVD_WEIGHTS_I3D_K400",
)


@pytest.fixture(scope="session", autouse=True)
def offline_session(tmp_path_factory):
    root = tmp_path_factory.mktemp("session-caches")
    with pytest.MonkeyPatch.context() as patch:
        _isolate(patch, root)
        yield


@pytest.fixture(autouse=True)
def offline_caches(tmp_path_factory, monkeypatch):
    """A fresh, empty set of weights locations for each test."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("caches"))


@pytest.fixture
def one_thread():
    """For tiny timed tensors: one thread is as fast, and immune to a busy machine's
    oversubscription (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_accelerator():
    """accelerate keeps one mixed-precision setting per process; tests that switch it start
    and end with a fresh one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture
def repeatable():
    """Bit-for-bit comparisons on a GPU too (CPU kernels already sum in a fixed order)."""
    from variants.repeatable import deterministic_kernels

    with deterministic_kernels(torch.cuda.is_available()):
        yield


def _isolate(patch, root) -> None:
    patch.setenv("EXSVD_OFFLINE", "1")
    patch.setenv("EXSVD_WEIGHTS_DIR", str(root / "weights"))
    patch.setenv("TORCH_HOME", str(root / "torch"))
    patch.setenv("HF_HOME", str(root / "hf"))
    patch.delenv("HF_HUB_CACHE", raising=False)
    for name in WEIGHT_ENV:
        patch.delenv(name, raising=False)


def real_weights_dir() -> str | None:
    """Where real pretrained files for the optional tests live, if anywhere."""
    return os.environ.get("EXSVD_TEST_WEIGHTS_DIR")
