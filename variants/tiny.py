"""Tiny configurations of the real SVD classes: a few M parameters, 64x64 pixels, CPU-friendly.

The same diffusers / transformers classes as Stable Video Diffusion, only smaller, so every code
path (patching, generation, post-tuning) runs on a laptop CPU and in the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metrics.errors import BenchError, first_line

SHIPPED = Path(__file__).parent / "weights" / "tiny-svd"  # the committed, pretrained pipeline

TINY_UNET = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(2, 4),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    transformer_layers_per_block=1,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
)
TINY_IMAGE_ENCODER = dict(  # the pipeline resizes condition images to 224 itself
    image_size=224,
    patch_size=32,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    projection_dim=32,
)

# The shipped model: an 8x spatial VAE (64x64 pixels -> 4x8x8 latents) and a UNet about 4x the
# test one. The probes found 8x8 latents learn motion where 16x16 ones did not at equal CPU time
# (a UNet step costs a third); trained as `tiny_pretrain` does, the 8x8 VAE reconstructs better
# than the old 16x16 one did (30.1 dB on the coarser textures, 26.1 on the old ones, against 22.4).
EMBEDDED_UNET = dict(
    TINY_UNET,
    block_out_channels=(64, 128),
    cross_attention_dim=64,
    num_attention_heads=(4, 8),
    addition_time_embed_dim=16,
    projection_class_embeddings_input_dim=48,
)
# 64 channels: diffusers fixes 32 norm groups, and with 32 channels (1 per group) colour is lost.
EMBEDDED_VAE = dict(TINY_VAE, block_out_channels=(64,) * 4)
EMBEDDED_IMAGE_ENCODER = dict(
    TINY_IMAGE_ENCODER, hidden_size=64, intermediate_size=128, projection_dim=64
)


def tiny_pipeline(seed: int = 0, *, unet: dict = TINY_UNET, vae: dict = TINY_VAE,
                  image_encoder: dict = TINY_IMAGE_ENCODER):
    """A random-init ``StableVideoDiffusionPipeline`` built from tiny configurations (the test
    ones by default, ``EMBEDDED_*`` for the shipped model)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    return StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder(**vae).eval(),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**image_encoder)).eval(),
        unet=UNetSpatioTemporalConditionModel(**unet).eval(),
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
    )


def load_shipped(path: Path = SHIPPED, dtype: torch.dtype = torch.float32):
    """The pretrained embedded model (or any pipeline folder ``pretrain`` wrote)."""
    from diffusers import StableVideoDiffusionPipeline

    return StableVideoDiffusionPipeline.from_pretrained(path, dtype=dtype)


PRETRAIN_HELP = {
    "frames": "frames per clip: the base length L",
    "size": "frame height and width in pixels (a multiple of 16, >= 32)",
    "seed": "seed of the training clips, the initial weights and every step",
    "train_clips": "training clips rendered up front (the held-out split is disjoint)",
    "vae_steps": "VAE training steps",
    "vae_batch": "clips per VAE step",
    "vae_frames": "consecutive frames of each clip per VAE step",
    "vae_lr": "VAE peak learning rate (AdamW, warm-up, cosine decay)",
    "kl_weight": "weight of the VAE's KL term",
    "vae_logvar": "the VAE posterior's fixed log-variance",
    "unet_steps": "UNet training steps",
    "unet_batch": "clips per UNet step",
    "unet_lr": "UNet peak learning rate (AdamW, warm-up, cosine decay)",
    "warmup_steps": "warm-up steps of both learning rates",
    "ema": "EMA decay of the UNet weights (the pipeline gets the EMA)",
}
INTERRUPTED = {
    "pretrain": "rerun the same command: the UNet phase continues from its last checkpoint, "
    "the VAE phase starts over",
    "evaluate": "nothing written",
}


def main(argv: list[str] | None = None) -> int:
    from dataclasses import fields

    from variants.tiny_pretrain import PretrainConfig

    parser = argparse.ArgumentParser(
        prog="python -m variants.tiny",
        description="The embedded tiny SVD: pretrain it on the synthetic generator (seeded), "
        "or measure what a pretrained one learned on the held-out split.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "pretrain",
        help="train the tiny VAE, then the tiny UNet on pre-encoded latents",
        description="Train the tiny VAE, then the tiny UNet on pre-encoded latents, and write "
        "the pipeline to --out. The defaults (the shipped model) take about 54 minutes on a "
        "fast 2-core machine, about 4 hours on slower ones (README, The embedded tiny model). "
        "Rerun after an interruption, the same command continues the UNet phase from its last "
        "checkpoint; rendering and the VAE phase (about 20 of the 54 minutes) start over.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                     help="pipeline folder to write")
    for field in fields(PretrainConfig):
        run.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                         default=field.default, help=PRETRAIN_HELP[field.name])
    check = commands.add_parser(
        "evaluate",
        help="held-out learning report (JSON): VAE PSNR, frame-0 PSNR, motion vs the data",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument("--model", default=str(SHIPPED),
                       help="pipeline folder, or 'untrained' for a random-init embedded model")
    check.add_argument("--clips", type=_at_least(1), default=8,
                       help="held-out clips (kinds in turn)")
    check.add_argument("--frames", type=_at_least(3), default=8)
    check.add_argument("--steps", type=_at_least(1), default=25, help="sampling steps")
    check.add_argument(
        "--from-sigmas", type=_sigmas, default=[], metavar="S1,S2,...",
        help="also sample from each clip's own latents noised to these sigmas (SDEdit; each "
        "becomes the schedule's first sigma at or below it, reported as sigma_used) and report "
        "the motion kept: where generation loses it",
    )
    args = parser.parse_args(argv)
    command = _pretrain if args.command == "pretrain" else _evaluate
    try:
        return command(parser, args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass  # said below, once the traceback is gone and with it the open progress bars
    print(f"interrupted; {INTERRUPTED[args.command]}", file=sys.stderr)
    return 130


def _pretrain(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dataclasses import fields

    from variants.tiny_pretrain import PretrainConfig, pretrain

    try:
        config = PretrainConfig(**{f.name: getattr(args, f.name) for f in fields(PretrainConfig)})
    except ValueError as error:
        parser.error(str(error))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: is a file; give a folder for the pipeline")
    print(f"wrote {pretrain(args.out, config)}")
    return 0


def _evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import json

    from variants.tiny_data import held_out_set
    from variants.tiny_eval import evaluate_tiny, motion_from_noise

    if args.model != "untrained" and not (Path(args.model) / "model_index.json").is_file():
        parser.error(f"--model {args.model}: no pipeline folder (model_index.json) there; give "
                     "one that 'pretrain' wrote, or 'untrained'")
    if args.model == "untrained":
        pipe = tiny_pipeline(unet=EMBEDDED_UNET, vae=EMBEDDED_VAE,
                             image_encoder=EMBEDDED_IMAGE_ENCODER)
    else:
        try:
            pipe = load_shipped(Path(args.model))
        except Exception as err:  # diffusers and transformers raise several types for these
            raise BenchError(args.model, "not a complete, readable pipeline folder "
                             f"({first_line(err)})",
                             "give one that 'pretrain' wrote, or 'untrained'") from None
    clips, kinds = held_out_set(range(args.clips), frames=args.frames)
    report = evaluate_tiny(pipe, clips, kinds, steps=args.steps)
    if args.from_sigmas:
        report["from_noise"] = motion_from_noise(pipe, clips, kinds, args.from_sigmas,
                                                 steps=args.steps)
    print(json.dumps(report, indent=1))
    return 0


def _at_least(low: int):
    """argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _sigmas(text: str) -> list[float]:
    """argparse type: comma-separated positive noise levels."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not all(value > 0 for value in values):
        raise argparse.ArgumentTypeError(f"noise levels must be > 0: {text!r}")
    return values


if __name__ == "__main__":
    raise SystemExit(main())
