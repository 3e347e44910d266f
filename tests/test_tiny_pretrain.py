"""The tiny-model pretraining command end to end (a few steps: plumbing, not quality)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableVideoDiffusionPipeline

from variants.generate import GenerationConfig, generate, with_unet
from variants.tiny import main


def test_pretrain_command_writes_a_loadable_generating_pipeline(tmp_path):
    out = tmp_path / "tiny"
    assert main(["pretrain", "--out", str(out), "--vae-steps", "2", "--unet-steps", "2",
                 "--unet-batch", "1", "--train-clips", "4", "--warmup-steps", "1"]) == 0
    record = json.loads((out / "pretrain.json").read_text())
    assert len(record["vae_loss"]) == 2 and record["config"]["train_clips"] == 4
    assert (out / "unet_training" / "loss.csv").is_file()
    size = sum(f.stat().st_size for f in out.glob("*/*.safetensors"))
    assert size < 25 * 2**20  # the committed checkpoint's budget
    pipe = StableVideoDiffusionPipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.unet.dtype == torch.float32
    assert pipe.vae.config.scaling_factor == record["scaling_factor"] != 0.18215  # fitted
    assert sorted(p.name for p in (out / "unet_training").iterdir()) == [
        "loss.csv", "training.json"]  # no optimizer state or duplicate weights shipped
    training = json.loads((out / "unet_training" / "training.json").read_text())
    assert training["config"]["objective"]["loss_weight"] == "edm"  # a base: SVD's weighting
    config = GenerationConfig(frames=8, height=64, width=64, steps=2, decode_chunk=8)
    video = generate(with_unet(pipe, pipe.unet, config), np.zeros((64, 64, 3), np.uint8), 0,
                     config)
    assert video.shape == (8, 64, 64, 3)


def test_per_frame_decoder_decodes_each_frame_on_its_own():
    from variants.tiny import tiny_pipeline
    from variants.tiny_pretrain import per_frame_decoder

    vae = tiny_pipeline(0).vae
    latents = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = vae.decode(latents, num_frames=6).sample
        per_frame_decoder(vae)
        clip = vae.decode(latents, num_frames=6).sample
        alone = torch.cat([vae.decode(latents[i : i + 1], num_frames=1).sample for i in range(6)])
    assert not torch.allclose(mixed, alone, atol=1e-3)  # at random init the frames mix
    torch.testing.assert_close(clip, alone, rtol=1e-4, atol=1e-5)


def test_vae_training_holds_the_posterior_log_variance():
    from dataclasses import replace

    from variants.tiny import tiny_pipeline
    from variants.tiny_data import render_clips
    from variants.tiny_pretrain import PretrainConfig, train_vae

    vae = tiny_pipeline(0).vae
    config = replace(PretrainConfig(), vae_steps=3, warmup_steps=1)
    train_vae(vae, render_clips(range(4), frames=8, size=64), config, progress=False)
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(image).latent_dist
    assert torch.equal(posterior.logvar, torch.full_like(posterior.logvar, config.vae_logvar))
    assert posterior.mean.std() > 0.01  # the means still depend on the image


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--vae-frames", "9"], "vae_frames=9, frames=8"),
        (["--size", "60"], "size must be a multiple of 16"),
        (["--unet-steps", "0"], "unet_steps must be >= 1"),
        (["--unet-lr", "0"], "learning rates must be > 0"),
        (["--out", "FILE"], "is a file; give a folder"),
        (["--warmup-steps", "-1"], "warmup_steps must be >= 0"),  # a negative learning rate
        (["--seed", "-1"], "seed must be >= 0"),
        (["--seed", str(2**32)], "seed must be < 2**32"),  # would alias the held-out split
    ],
)
def test_pretrain_refuses_bad_settings_before_any_work(argv, needle, tmp_path, capsys):
    (tmp_path / "FILE").write_text("mine")
    argv = [str(tmp_path / "FILE") if arg == "FILE" else arg for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--out", str(tmp_path / "tiny"), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err, err
    assert not (tmp_path / "tiny").exists() and (tmp_path / "FILE").read_text() == "mine"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--clips", "0"], "--clips: must be >= 1, got 0"),
        (["--frames", "2"], "--frames: must be >= 3"),
        (["--model", "MISSING"], "no pipeline folder (model_index.json)"),
    ],
)
def test_evaluate_refuses_bad_settings(argv, needle, tmp_path, capsys):
    argv = [str(tmp_path) if arg == "MISSING" else arg for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err, err


@pytest.mark.parametrize("value", ["0", "1,x"])
def test_evaluate_rejects_bad_noise_levels(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "untrained", "--from-sigmas", value])
    assert exit_info.value.code == 2
    assert "--from-sigmas: " in capsys.readouterr().err


def test_pretrain_interrupted_continues_its_unet_phase_bit_for_bit(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    import variants.tiny_pretrain as tiny_pretrain

    argv = ["--vae-steps", "2", "--unet-steps", "3", "--unet-batch", "1", "--train-clips", "2",
            "--warmup-steps", "1", "--size", "32", "--frames", "4"]
    assert main(["pretrain", "--out", str(tmp_path / "whole"), *argv]) == 0
    latent_batches, steps = tiny_pretrain.latent_batches, []

    def interrupted(*args):
        batches = latent_batches(*args)

        def batch(step, generator):
            steps.append(step)
            if step == 1 and len(steps) == 2:  # killed in step 1, once: step 0 is saved
                raise KeyboardInterrupt
            return batches(step, generator)

        return batch

    monkeypatch.setattr(tiny_pretrain, "latent_batches", interrupted)
    out = tmp_path / "resumed"
    assert main(["pretrain", "--out", str(out), *argv]) == 130
    err = capsys.readouterr().err.strip().split("\n")[-1]  # on a line of its own, the last
    assert err.startswith("interrupted; rerun the same command: the UNet phase continues")
    assert main(["pretrain", "--out", str(out), "--unet-lr", "1e-4", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {out / 'unet_training' / 'checkpoint.pt'}: ")
    assert "unet_lr differ" in err
    assert main(["pretrain", "--out", str(out), *argv]) == 0
    assert steps == [0, 1, 1, 2]  # the rerun started at step 1
    for part in ("unet", "vae"):
        whole, resumed = (load_file(next((o / part).glob("*.safetensors")))
                          for o in (tmp_path / "whole", out))
        assert all(torch.equal(whole[name], resumed[name]) for name in whole), part


@pytest.mark.parametrize("damage", ["truncated unet", "only model_index.json"])
def test_evaluate_names_a_damaged_pipeline_folder_in_one_line(damage, tmp_path, capsys):
    import shutil

    from variants.tiny import SHIPPED

    model = tmp_path / "model"
    if damage == "truncated unet":
        shutil.copytree(SHIPPED, model)
        weights = next((model / "unet").glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100_000])
    else:
        model.mkdir()
        shutil.copy(SHIPPED / "model_index.json", model)
    assert main(["evaluate", "--model", str(model), "--clips", "1", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().split("\n")[-1]
    assert err.startswith(f"error: {model}: not a complete, readable pipeline folder (OSError: ")


def test_pretrain_help_explains_every_option_and_how_long_the_defaults_take(capsys):
    from dataclasses import fields

    from variants.tiny import PRETRAIN_HELP
    from variants.tiny_pretrain import PretrainConfig

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "about 54 minutes on a fast 2-core machine, about 4 hours on slower ones" in out
    assert "continues the UNet phase" in out and "the VAE phase" in out
    assert "--out OUT pipeline folder to write --frames" in out  # required: no default shown
    for field in fields(PretrainConfig):
        flag = field.name.replace("_", "-")
        help_text = f"{PRETRAIN_HELP[field.name]} (default: {field.default})"
        assert f"--{flag} {field.name.upper()} {help_text}" in out, flag
