"""The tiny-model pretraining command end to end (a few steps: plumbing, not quality)."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import StableVideoDiffusionPipeline

from variants.generate import GenerationConfig, generate, with_unet
from variants.tiny import main


def test_pretrain_command_writes_a_loadable_generating_pipeline(tmp_path):
    out = tmp_path / "tiny"
    assert main(["pretrain", "--out", str(out), "--vae-steps", "1", "--unet-steps", "1",
                 "--batch-size", "1"]) == 0
    assert (out / "vae_loss.csv").read_text().startswith("step,loss\n1,")
    assert (out / "unet_training" / "loss.csv").is_file()
    size = sum(f.stat().st_size for f in out.glob("*/*.safetensors"))
    assert size < 25 * 2**20  # the committed checkpoint's budget
    pipe = StableVideoDiffusionPipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.unet.dtype == torch.float32
    config = GenerationConfig(frames=8, height=64, width=64, steps=2, decode_chunk=8)
    video = generate(with_unet(pipe, pipe.unet, config), np.zeros((64, 64, 3), np.uint8), 0,
                     config)
    assert video.shape == (8, 64, 64, 3)
