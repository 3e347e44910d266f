"""The committed embedded tiny SVD: it loads, generates, and has learned the training data.

Measured with the project's own metrics on a small fixed set of held-out clips (a texture and
motion never trained on) at the base length L = 8. The floors sit below what the shipped model
measured (README, *The embedded tiny model*) and well above the untrained model, so a broken
checkpoint, VAE scaling, conditioning or sampler fails here. Issue 7's VAE and frame-0 targets are
met and tested as such; its motion targets are not met yet: that test is a strict xfail, so it
turns red (to be un-marked) when a better model ships.
"""

from __future__ import annotations

import pytest

from variants.tiny import SHIPPED, load_shipped
from variants.tiny_data import held_out_set
from variants.tiny_eval import evaluate_tiny

CLIPS = range(8)  # kinds in turn: two pans, two zooms, two rotations, two sprite scenes
# shipped model on this set: VAE 30.1 dB, frame 0 29.3 dB (untrained: 13.5 and 13.5 dB).
# Issue 7's targets, the floors here: VAE >= 28 dB, frame 0 >= 25 dB.
VAE_PSNR, FRAME0_PSNR = 28.0, 25.0
# shipped: direction 0.77 on this set's 2 pans (0.90 on the 8 pans of 32 clips; untrained
# -0.19), flow 0.55x the data's. Issue 7's targets: direction >= 0.95, flow within 25% of the
# data's.
DIRECTION_FLOOR, MAGNITUDE_FLOOR = 0.65, 0.50
DIRECTION, MAGNITUDE = 0.95, (0.75, 1.25)


@pytest.fixture(scope="module")
def report():
    pipe = load_shipped()
    clips, kinds = held_out_set(CLIPS, frames=8)
    return evaluate_tiny(pipe, clips, kinds, steps=25)


def test_shipped_checkpoint_is_small_and_complete():
    files = {p.relative_to(SHIPPED).as_posix(): p.stat().st_size for p in SHIPPED.rglob("*")}
    for part in ("unet", "vae", "image_encoder"):
        assert any(name.startswith(f"{part}/") and name.endswith(".safetensors") for name in files)
    assert "pretrain.json" in files and "model_index.json" in files
    assert sum(files.values()) <= 25 * 2**20


@pytest.mark.slow
def test_vae_reconstructs_held_out_clips(report):
    assert report["vae_psnr"] >= VAE_PSNR


@pytest.mark.slow
def test_generation_starts_from_the_condition(report):
    assert report["frame0_psnr"] >= FRAME0_PSNR


@pytest.mark.slow
def test_generated_clips_move_in_a_kept_direction(report):
    assert report["pan_direction_consistency"] >= DIRECTION_FLOOR
    assert report["flow_magnitude"] / report["data_flow_magnitude"] >= MAGNITUDE_FLOOR


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 7: the shipped model moves 0.55x the data's flow")
def test_generated_motion_meets_the_targets(report):
    assert report["pan_direction_consistency"] >= DIRECTION
    ratio = report["flow_magnitude"] / report["data_flow_magnitude"]
    assert MAGNITUDE[0] <= ratio <= MAGNITUDE[1]
