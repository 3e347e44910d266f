"""Tiny configurations of the real SVD classes: a few M parameters, 64x64 pixels, CPU-friendly.

The same diffusers / transformers classes as Stable Video Diffusion, only smaller, so every code
path (patching, generation, post-tuning) runs on a laptop CPU and in the tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

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


def tiny_pipeline(seed: int = 0):
    """A random-init ``StableVideoDiffusionPipeline`` built from the tiny configurations."""
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
        vae=AutoencoderKLTemporalDecoder(**TINY_VAE).eval(),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_IMAGE_ENCODER)).eval(),
        unet=UNetSpatioTemporalConditionModel(**TINY_UNET).eval(),
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
    )


def pretrain_vae(
    vae,
    clips,
    steps: int,
    lr: float = 1e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train the tiny temporal VAE as SVD uses it: encode frames, decode whole clips with the
    temporal decoder (MSE + a small KL); ``clips(step, generator)`` gives uint8 [B, T, H, W, 3]."""
    from tqdm import tqdm

    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    losses = []
    for step in tqdm(range(steps), desc="pretrain vae", disable=not progress):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        batch = torch.from_numpy(clips(step, generator)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
        frames = batch.shape[1]
        posterior = vae.encode(batch.flatten(0, 1)).latent_dist
        decoded = vae.decode(posterior.sample(generator), num_frames=frames).sample
        loss = F.mse_loss(decoded, batch.flatten(0, 1)) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    vae.eval().requires_grad_(False)
    return losses


def pretrain(
    out: Path,
    *,
    vae_steps: int,
    unet_steps: int,
    frames: int = 8,
    size: int = 64,
    batch_size: int = 4,
    seed: int = 0,
    vae_lr: float = 1e-3,
    unet_lr: float = 3e-4,
    progress: bool = True,
) -> Path:
    """Train the embedded tiny SVD on the synthetic generator and save it as a diffusers
    pipeline folder (fp16 weights) that ``StableVideoDiffusionPipeline.from_pretrained`` loads."""
    from diffusers import UNetSpatioTemporalConditionModel

    from variants.posttune import TuneConfig, post_tune, synthetic_clips
    from variants.unet import ExSVDUNet

    pipe = tiny_pipeline(seed)
    clips = synthetic_clips(frames, size, batch_size)
    vae_losses = pretrain_vae(pipe.vae, clips, vae_steps, vae_lr, seed=seed, progress=progress)
    unet = ExSVDUNet.from_stock(pipe.unet)  # sinusoid, no conv: the stock model
    config = TuneConfig(
        steps=unet_steps,
        frames=frames,
        lr=unet_lr,
        batch_size=batch_size,
        seed=seed,
        checkpoint_every=max(1, unet_steps // 10),
    )
    post_tune(unet, pipe, clips, config, out / "unet_training", progress=progress, train_all=True)
    stock = UNetSpatioTemporalConditionModel(**dict(TINY_UNET))
    stock.load_state_dict(unet.state_dict())
    pipe.unet = stock.eval()
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    (out / "vae_loss.csv").write_text(
        "step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(vae_losses, 1))
    )
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m variants.tiny",
        description="The embedded tiny SVD: pretrain it on the synthetic generator (seeded).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "pretrain",
        help="train the tiny VAE then the tiny UNet",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--out", type=Path, required=True, help="pipeline folder to write")
    run.add_argument("--vae-steps", type=int, default=1500)
    run.add_argument("--unet-steps", type=int, default=4000)
    run.add_argument("--frames", type=int, default=8, help="base length L")
    run.add_argument("--batch-size", type=int, default=4)
    run.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pretrain(
        args.out,
        vae_steps=args.vae_steps,
        unet_steps=args.unet_steps,
        frames=args.frames,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
