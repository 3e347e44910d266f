"""Test setup: never touch the network or the user's caches."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def offline_caches(tmp_path_factory, monkeypatch):
    """Point every weights location at empty temp folders and forbid downloads."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("EXSVD_OFFLINE", "1")
    monkeypatch.setenv("EXSVD_WEIGHTS_DIR", str(root / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    for name in ("EXSVD_WEIGHTS_RAFT_LARGE", "EXSVD_WEIGHTS_RAFT_SMALL"):
        monkeypatch.delenv(name, raising=False)
