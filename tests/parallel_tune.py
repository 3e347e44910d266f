"""Post-tuning under ``accelerate launch``, for tests/test_parallel_tune.py: the exsvd arm of a
random-init tiny pipeline trained straight, and trained ``STOP`` steps then resumed with fresh
weights (as a new launch would); the main process saves both runs' trainable weights. Under
DeepSpeed, also 2 steps in bf16 (the engine holds the weights in bf16).

Without a GPU, DDP runs over gloo (the test sets ACCELERATE_USE_CPU=true). For DeepSpeed this
script sets the process group up over gloo, which accelerate does not do on CPUs (NCCL does it
on GPUs), and skips the shared-memory kernel DeepSpeed compiles for CPU inference (70 s of
build on 2 cores; no training collective uses it).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from variants import get_variant
from variants.posttune import TuneConfig, post_tune, synthetic_clips
from variants.tiny import tiny_pipeline

FRAMES, SIZE, STOP = 8, 64, 1
CONFIG = TuneConfig(steps=3, frames=FRAMES, lr=1e-3, seed=3, grad_accumulation=2,
                    checkpoint_every=1, ema_decay=0.5)


def arm(base):
    return get_variant("exsvd").build(base.unet, base_length=4, table_size=16, bounce_low=2)


def trainable(unet) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().clone() for n, p in unet.named_parameters() if p.requires_grad}


def main(out: Path) -> None:
    from accelerate import PartialState

    use_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"
    if use_deepspeed and not torch.cuda.is_available():
        # the module itself: the attribute deepspeed.comm.torch is PyTorch (comm re-exports it)
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
        PartialState(backend="gloo")
    # DDP trains under deterministic kernels (variants.repeatable), as a GPU run may ask (the
    # same numbers on CPUs); not DeepSpeed, as torch then fills each new buffer, ZeRO-2's
    # 2 GB buckets too: 70 s more on 2 CPUs, a millisecond on a GPU
    config = CONFIG if use_deepspeed else replace(CONFIG, deterministic=True)
    base = tiny_pipeline(seed=0)
    clips = synthetic_clips(FRAMES, SIZE, config.batch_size)
    straight = arm(base)
    post_tune(straight, base, clips, config, out / "straight", progress=False)
    post_tune(arm(base), base, clips, config, out / "resumed", stop_after=STOP, progress=False)
    resumed = arm(base)
    post_tune(resumed, base, clips, config, out / "resumed", resume=True, progress=False)
    if use_deepspeed:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()  # another mixed precision; the process group stays
        post_tune(arm(base), base, clips, replace(CONFIG, steps=2, mixed_precision="bf16"),
                  out / "bf16", progress=False)
    if PartialState().is_main_process:
        torch.save({"straight": trainable(straight), "resumed": trainable(resumed)},
                   out / "trainable.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
