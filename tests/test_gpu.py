"""The GPU paths of post-tuning and generation, on tiny models (skipped without CUDA).

CI has no GPU: these run on a lent device through ``.ci/device-check``. On a machine without
one, ``EXSVD_TEST_DEVICE=cpu pytest tests/test_gpu.py`` runs the same tests on the CPU, to check
the tests themselves (post-tuning uses accelerate's device, the GPU wherever there is one).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from variants import get_variant
from variants.generate import GenerationConfig, generate, with_unet
from variants.posttune import TuneConfig, post_tune, synthetic_clips
from variants.tiny import tiny_pipeline
from variants.unet import set_trainable

DEVICE = os.environ.get("EXSVD_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA GPU (.ci/device-check runs it on one; EXSVD_TEST_DEVICE=cpu to try it "
    "here)",
)

FRAMES, SIZE = 32, 64  # 4x the tiny model's base length, as the ablation extends it
CONFIG = TuneConfig(steps=4, frames=FRAMES, lr=1e-3, seed=3, checkpoint_every=2, ema_decay=0.5)


@pytest.fixture(scope="module")
def base():
    return tiny_pipeline(seed=0)


def arm_unet(base, arm="exsvd"):
    return get_variant(arm).build(base.unet, base_length=8, table_size=64, bounce_low=2)


def trainable(unet) -> dict[str, torch.Tensor]:
    """Copies (on the CPU, fp32) of the parameters that train."""
    return {n: p.detach().float().cpu().clone() for n, p in unet.named_parameters()
            if p.requires_grad}


def losses(folder) -> list[float]:
    return [float(line.split(",")[1]) for line in (folder / "loss.csv").read_text().split()[1:]]


@pytest.mark.usefixtures("fresh_accelerator")
def test_post_tuning_runs_on_the_device_and_resumes_where_it_stopped(base, tmp_path):
    """Bit for bit under ``deterministic``: with kernels free to sum in any order, two straight
    runs on an H200 differed by up to 1.8e-3, as much as a resume that lost the optimizer state
    would (variants.repeatable)."""
    clips, config = synthetic_clips(FRAMES, SIZE, 1), replace(CONFIG, deterministic=True)
    straight = arm_unet(base)
    post_tune(straight, base, clips, config, tmp_path / "straight", progress=False)
    assert next(straight.parameters()).device.type == DEVICE
    interrupted = arm_unet(base)
    post_tune(interrupted, base, clips, config, tmp_path / "resumed", stop_after=2,
              progress=False)
    resumed = arm_unet(base)  # a fresh process: weights back at the arm's init, on the CPU
    post_tune(resumed, base, clips, config, tmp_path / "resumed", resume=True, progress=False)
    for name, value in trainable(straight).items():
        assert torch.equal(trainable(resumed)[name], value), name
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")


@pytest.mark.usefixtures("fresh_accelerator")
def test_the_memory_levers_train_the_arm_in_bf16_on_the_device(base, tmp_path):
    """Full checkpointing, frozen weights in bf16, fused AdamW (configs/svd-xt-128.toml)."""
    unet = arm_unet(base)
    set_trainable(unet, True)  # as post_tune does first: which parameters train
    frozen = {n: p.detach().clone() for n, p in unet.named_parameters() if not p.requires_grad}
    before = trainable(unet)
    config = replace(CONFIG, steps=2, mixed_precision="bf16", checkpointing="full",
                     frozen_dtype="bfloat16", fused_adamw=True)
    post_tune(unet, base, synthetic_clips(FRAMES, SIZE, 1), config, tmp_path, progress=False)
    assert all(math.isfinite(loss) and loss > 0 for loss in losses(tmp_path))
    dtypes = {p.requires_grad: p.dtype for p in unet.parameters()}
    assert dtypes == {True: torch.float32, False: torch.bfloat16}
    after = trainable(unet)
    assert after and all(not torch.equal(before[name], after[name]) for name in after)
    for name, param in unet.named_parameters():
        if not param.requires_grad:
            assert torch.equal(param.cpu(), frozen[name].to(torch.bfloat16)), name


def test_long_generation_in_bf16_on_the_device_is_deterministic_per_seed(base):
    from metrics.synthetic import make_video

    condition = make_video("pan", frames=1, size=(SIZE, SIZE), seed=5).frames[0]
    config = GenerationConfig(frames=FRAMES, height=SIZE, width=SIZE, steps=3, decode_chunk=8,
                              dtype="bfloat16")
    low = tiny_pipeline(seed=0).to(torch.bfloat16)
    pipe = with_unet(low, arm_unet(low).eval(), config, device=DEVICE)
    first = generate(pipe, condition, 3, config)
    again = generate(pipe, condition, 3, config)
    other = generate(pipe, condition, 4, config)
    assert first.shape == (FRAMES, SIZE, SIZE, 3) and pipe.unet.device.type == DEVICE
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 1


@pytest.mark.skipif(DEVICE != "cuda" or importlib.util.find_spec("deepspeed") is None,
                    reason="needs deepspeed and a GPU (.ci/device-wheels carries deepspeed)")
def test_bench_post_tunes_an_arm_under_deepspeed_zero2_on_the_device(base, tmp_path):
    """``bench run`` with tune.deepspeed launches the arm's post-tuning under DeepSpeed."""
    from bench.__main__ import main

    base.save_pretrained(tmp_path / "tiny-svd")
    sets = [f'model.base="{tmp_path / "tiny-svd"}"', "model.base_length=4",
            "model.extended_length=8", "model.bounce_low=2", "model.device=cuda",
            "conditions.count=1", "tune.steps=3", "tune.checkpoint_every=1",
            "tune.deepspeed=true", 'tune.mixed_precision="bf16"', "generation.steps=2",
            "generation.decode_chunk=4", 'evaluate.metrics="psnr"', 'evaluate.flow="dis"']
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), "--variants", "exsvd",
                 *[part for item in sets for part in ("--set", item)]]) == 0
    tuned = run / "tune" / "exsvd"
    record = json.loads((tuned / "training.json").read_text())
    assert record["launch"] == {"processes": 1, "distributed": "DEEPSPEED"}
    assert len(losses(tuned)) == 3 and all(math.isfinite(loss) for loss in losses(tuned))
    assert not (tuned / "deepspeed").exists() and (run / "report" / "index.html").is_file()
    weights = tuned / "unet_ema" / "diffusion_pytorch_model.safetensors"  # the engine held bf16
    assert {t.dtype for t in load_file(weights).values()} == {torch.float32}
