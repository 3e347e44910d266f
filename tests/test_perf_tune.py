"""``python -m bench perf tune``: every memory setting runs a post-tuning step (tiny, CPU)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench.__main__ import main
from bench.perf_tune import SETTINGS, apply_setting, random_batch, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_arm():
    from diffusers import UNetSpatioTemporalConditionModel

    from variants import get_variant
    from variants.tiny import TINY_UNET
    from variants.unet import set_trainable

    torch.manual_seed(0)
    stock = UNetSpatioTemporalConditionModel(**TINY_UNET)
    unet = get_variant("exsvd").build(stock, base_length=8, table_size=16).train()
    set_trainable(unet, tuned=True)
    return unet


def test_every_setting_prints_a_timed_row(capsys):
    code = main(
        ["perf", "tune", "--model", "tiny", "--frames", "8", "--size", "64", "--steps", "1"]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.split()[:1] == ["8"]}
    assert list(rows) == list(SETTINGS)
    for fields in rows.values():
        seconds = float(fields[2])
        assert math.isfinite(seconds) and seconds > 0
        assert fields[4] == "n/a"  # no peak memory on CPU
    assert float(rows["fp32"][3].rstrip("x")) == 1.0
    assert "not measured on cpu" in out.splitlines()[-1]


def test_lean_step_updates_only_the_trainable_parameters():
    unet = tiny_arm()
    optimizer = apply_setting(unet, SETTINGS["lean"])
    frozen = {n: p.detach().clone() for n, p in unet.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in unet.named_parameters() if p.requires_grad}
    assert frozen and trainable
    assert {p.dtype for n, p in unet.named_parameters() if n in frozen} == {torch.bfloat16}
    assert {p.dtype for n, p in unet.named_parameters() if n in trainable} == {torch.float32}
    batch = random_batch(unet, frames=8, size=64, device="cpu")
    loss = train_step(unet, optimizer, batch, SETTINGS["lean"], torch.Generator().manual_seed(1))
    assert math.isfinite(loss)
    params = dict(unet.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in frozen.items())
    changed = [n for n, before in trainable.items() if not torch.equal(params[n], before)]
    assert len(changed) == len(trainable)


@pytest.mark.parametrize(("checkpointing", "temporal_runs"), [("stock", 1), ("full", 2)])
def test_checkpointing_changes_no_gradient(checkpointing, temporal_runs):
    """Recomputation is exact in fp32: the same loss and gradients as keeping everything,
    identity convs and positional tables inside the checkpointed transformers included. Only
    "full" recomputes the temporal blocks (diffusers' own checkpointing stores them)."""
    from diffusers.models.attention import TemporalBasicTransformerBlock

    from variants.objective import ObjectiveConfig, edm_loss

    grads = []
    for mode in ("none", checkpointing):
        unet = tiny_arm()
        setting = dataclasses.replace(SETTINGS["fp32"], checkpointing=mode)
        apply_setting(unet, setting)
        runs = []
        for block in unet.modules():
            if isinstance(block, TemporalBasicTransformerBlock):
                block.register_forward_hook(lambda *_, b=block, runs=runs: runs.append(b))
        batch = random_batch(unet, frames=8, size=32, device="cpu")
        edm_loss(unet, batch, ObjectiveConfig(), torch.Generator().manual_seed(1)).backward()
        blocks = {id(b) for b in runs}
        assert len(runs) == len(blocks) * (temporal_runs if mode != "none" else 1)
        grads.append({n: p.grad for n, p in unet.named_parameters() if p.requires_grad})
    assert all(g is not None for g in grads[1].values())
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("arm", "gpu_gib", "reserved", "verdict"),
    [
        ("exsvd", 79.0, 52.0, "met by full-ckpt (49.0 GiB, reserved 52.0)"),
        ("exsvd", 139.0, 52.0, "not judged: this GPU has 139 GiB"),  # no --memory-limit
        ("exsvd", 79.0, 95.0, "not met by any setting"),  # fits allocated, not reserved
        ("svd", 79.0, 52.0, "not measured by this run"),  # a lighter arm says nothing
    ],
)
def test_the_target_verdict_needs_an_80_gb_card_and_the_exsvd_arm(arm, gpu_gib, reserved, verdict):
    from types import SimpleNamespace

    from bench.perf_tune import _target_line

    args = SimpleNamespace(device="cuda", model="svd-xt", arm=arm, size=512)
    results = {(128, "full-ckpt"): {"oom": False, "peak": 49.0, "reserved": reserved}}
    assert verdict in _target_line(results, [SETTINGS["full-ckpt"]], args, gpu_gib)


def test_cuda_or_cuda_n_becomes_the_current_device_as_torch_accepts_it(monkeypatch):
    """Every perf command's --device: "cuda" stays on the current GPU, "cuda:N" becomes it
    (torch.cuda.set_device refuses a device without an index: the H200 run found it)."""
    from torch.cuda._utils import _get_device_index

    import bench.common

    chosen = []
    monkeypatch.setattr(bench.common, "check_device", lambda device: device)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(_get_device_index(d)))
    assert bench.common.use_device("cuda") == "cuda" and chosen == []
    assert bench.common.use_device("cuda:1") == "cuda:1" and chosen == [1]
    assert bench.common.use_device("cpu") == "cpu" and chosen == [1]
