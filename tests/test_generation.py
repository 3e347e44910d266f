"""Generation through diffusers' StableVideoDiffusionPipeline with patched UNets (tiny, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metrics.errors import BenchError
from metrics.video_io import read_video
from variants import get_variant
from variants.generate import (
    GenerationConfig,
    generate,
    generate_arm,
    load_base_pipeline,
    with_unet,
)
from variants.tiny import tiny_pipeline
from variants.tiny_eval import encode_mode, noised_start, reconstruct

BASE = 8
LONG = GenerationConfig(frames=BASE + 4, height=64, width=64, steps=3, decode_chunk=4)


@pytest.fixture(scope="module")
def base():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def condition() -> np.ndarray:
    from metrics.synthetic import make_video

    return make_video("pan", frames=1, size=(64, 64), seed=5).frames[0]


def arm_pipe(base, arm):
    unet = get_variant(arm).build(base.unet, base_length=BASE, table_size=32, bounce_low=2)
    return with_unet(base, unet.eval(), LONG)


def test_long_generation_runs_and_is_deterministic_per_seed(base, condition):
    pipe = arm_pipe(base, "exsvd")
    first = generate(pipe, condition, 3, LONG)
    again = generate(pipe, condition, 3, LONG)
    other = generate(pipe, condition, 4, LONG)
    assert first.shape == (BASE + 4, 64, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 1


def test_arms_share_the_base_and_differ_past_the_base_length(base, condition):
    long = generate(arm_pipe(base, "svd-long"), condition, 3, LONG)
    static = generate(arm_pipe(base, "exsvd-static-pe"), condition, 3, LONG)
    bounced = generate(arm_pipe(base, "exsvd"), condition, 3, LONG)
    np.testing.assert_array_equal(long, static)  # identity conv at init changes nothing
    assert np.abs(long.astype(int) - bounced).max() > 0  # bounced positions past L


def test_sampling_from_noised_latents_of_a_clip(base):
    """``start`` (SDEdit, the motion diagnostic): from a tiny sigma the sample is the clip through
    the VAE; from the top of the schedule it is a new clip, as without ``start``."""
    from metrics.synthetic import make_video

    clip = make_video("pan", frames=8, size=(64, 64), seed=5).frames
    config = GenerationConfig(frames=8, height=64, width=64, steps=10, decode_chunk=8)
    pipe = with_unet(base, base.unet, config)
    recon = reconstruct(base.vae, clip).astype(float)

    def psnr_to_recon(video):
        return 10 * np.log10(255**2 / np.mean((video - recon) ** 2))

    def from_sigma(sigma):
        modes = encode_mode(base.vae, clip)
        start = noised_start(base, modes, sigma, config.steps, torch.Generator().manual_seed(0))
        return generate(pipe, clip[0], 0, config, start=start)

    assert psnr_to_recon(from_sigma(0.01)) > 30  # measured 34.1 dB
    assert psnr_to_recon(from_sigma(700)) < 25  # 18.6, like a plain sample (18.4)
    assert psnr_to_recon(generate(pipe, clip[0], 0, config)) < 25


def test_decoding_in_chunks_over_time(base, condition):
    pipe = arm_pipe(base, "svd-long")

    def run(chunk):
        return generate(pipe, condition, 1, GenerationConfig(**{**LONG.__dict__,
                                                                  "decode_chunk": chunk}))

    whole, one_chunk, chunked = run(LONG.frames), run(2 * LONG.frames), run(4)
    np.testing.assert_array_equal(whole, one_chunk)  # the same single chunk
    assert chunked.shape == whole.shape
    assert np.abs(whole.astype(int) - chunked).max() > 0  # chunks really split the decoding


def test_generate_arm_writes_videos_and_a_complete_manifest(base, condition, tmp_path):
    pipe = arm_pipe(base, "exsvd")
    manifest_path = generate_arm(pipe, "exsvd", {"pan": condition}, [0, 1], LONG, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["arm"] == "exsvd"
    assert manifest["generation"]["frames"] == BASE + 4 and manifest["generation"]["steps"] == 3
    assert set(manifest["weights_sha256"]) == {"unet", "vae", "image_encoder"}
    assert [(v["condition"], v["seed"]) for v in manifest["videos"]] == [("pan", 0), ("pan", 1)]
    for entry in manifest["videos"]:
        video = read_video(tmp_path / entry["file"])
        assert video.num_frames == BASE + 4
        np.testing.assert_array_equal(video.frames, generate(pipe, condition, entry["seed"], LONG))
        assert len(entry["video_sha256"]) == len(entry["condition_sha256"]) == 64


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="huggingface-cli download"):
        load_base_pipeline(str(tmp_path / "no-such-model"))


def test_a_damaged_base_model_folder_is_named_with_what_failed(base, tmp_path):
    base.save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BenchError, match=r"model: cannot be loaded as an SVD pipeline \(OSError"):
        load_base_pipeline(str(tmp_path / "model"))


def test_a_generation_dtype_other_than_the_base_pipelines_is_refused(base):
    from dataclasses import replace

    unet = get_variant("exsvd").build(base.unet, base_length=BASE, table_size=32, bounce_low=2)
    with pytest.raises(BenchError, match="bfloat16: differs from the base pipeline's float32"):
        with_unet(base, unet, replace(LONG, dtype="bfloat16"))


def test_the_sdedit_diagnostic_reports_the_sigma_it_started_from(base):
    from metrics.synthetic import make_video
    from variants.tiny_eval import motion_from_noise

    clip = make_video("pan", frames=BASE, size=(64, 64), seed=3).frames
    report = motion_from_noise(base, clip[None], ["pan"], [1.0], steps=3)
    base.scheduler.set_timesteps(3)
    schedule = base.scheduler.sigmas.tolist()
    used = report["1"]["sigma_used"]
    assert used == max(s for s in schedule if s <= 1.0) and used < 1.0  # not the sigma asked
