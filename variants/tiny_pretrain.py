"""Pretraining the embedded tiny SVD on the synthetic generator, seeded, on a CPU.

Three phases: (1) the temporal VAE on whole clips (frames encoded one by one, the clip decoded
by the temporal decoder, as SVD decodes), (2) its latent scaling factor fitted so latents have
unit variance (EDM assumes sigma_data = 1), (3) the UNet on the pre-encoded training set with
SVD's objective through the same ``post_tune`` routine the arms use (every parameter trained,
warm-up and cosine learning rate, EMA). The result is a diffusers pipeline folder (fp16).

A rerun into the same folder with the same settings continues the UNet phase from its last
checkpoint; the VAE phase has none and starts over (seeded: at the same thread count the result
is bit for bit an uninterrupted run's).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metrics.atomic import atomic_path
from metrics.errors import BenchError
from variants.modules import set_identity_
from variants.objective import Batch, ObjectiveConfig
from variants.posttune import TuneConfig, clip_pixels, condition_inputs, post_tune, scheduled_lr
from variants.tiny_data import render_clips


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines the shipped model (recorded in its ``pretrain.json``)."""

    frames: int = 8  # base length L
    size: int = 64
    seed: int = 0
    train_clips: int = 2048  # pre-rendered training set; held-out clips come from another split
    vae_steps: int = 3000
    vae_batch: int = 4  # clips per step ...
    vae_frames: int = 2  # ... and consecutive frames of each (the same pixels per step as 1 x 8)
    vae_lr: float = 5e-4  # at 1e-3 the loss sat on a plateau until the cosine decay (README)
    kl_weight: float = 1e-6
    vae_logvar: float = -10.0  # posterior log-variance, fixed
    unet_steps: int = 10500
    unet_batch: int = 4
    unet_lr: float = 3e-4
    warmup_steps: int = 200
    ema: float = 0.995  # short run: the EMA must forget the random init

    def __post_init__(self):
        lows = {"frames": 2, "train_clips": 1, "vae_steps": 1, "vae_batch": 1, "unet_steps": 1,
                "unet_batch": 1, "warmup_steps": 0, "kl_weight": 0, "seed": 0}
        for name, low in lows.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 1 <= self.vae_frames <= self.frames:
            raise ValueError(f"need 1 <= vae_frames <= frames, got vae_frames="
                             f"{self.vae_frames}, frames={self.frames}")
        if self.size < 32 or self.size % 16:  # 8x VAE, then the UNet halves the latents once
            raise ValueError(f"size must be a multiple of 16 and >= 32, got {self.size}")
        if self.seed >= 2**32:  # numpy pads seed lists: a larger one aliases the held-out split
            raise ValueError(f"seed must be < 2**32, got {self.seed}")
        if min(self.vae_lr, self.unet_lr) <= 0 or not 0 <= self.ema < 1:
            raise ValueError("learning rates must be > 0 and ema in [0, 1)")


def fix_posterior(vae, logvar: float) -> None:
    """Set the posterior log-variance to ``logvar`` everywhere (the logvar half of ``quant_conv``,
    which outputs the posterior's moments: weights 0, bias ``logvar``); training calls it after
    every step, so the posterior stays that narrow. Left free, it widened until some latent
    channels were half noise, and the decoder learned to blur (README, *The embedded tiny
    model*)."""
    conv = vae.quant_conv
    half = conv.out_channels // 2  # [mean, logvar] channels
    with torch.no_grad():
        conv.weight[half:].zero_()
        conv.bias[half:].fill_(logvar)


def per_frame_decoder(vae) -> None:
    """Start the temporal decoder as a per-frame one: each temporal res-block's last conv at
    zero (the block passes its input through) and the output's 3x1x1 time conv at the identity.
    At random init they mix neighbouring frames, and training from there stalls (README,
    *The embedded tiny model*); from here the frame mixing is learned only where it helps."""
    from diffusers.models.resnet import TemporalResnetBlock

    with torch.no_grad():
        for module in vae.decoder.modules():
            if isinstance(module, TemporalResnetBlock):
                module.conv2.weight.zero_()
                module.conv2.bias.zero_()
    set_identity_(vae.decoder.time_conv_out)


def train_vae(vae, data: np.ndarray, config: PretrainConfig, progress: bool = True) -> list[float]:
    """Train the temporal VAE on random windows of random clips of ``data`` (MSE of the decoded
    windows + small KL). Several clips per step: one clip's frames are near-duplicates, and one
    texture per step learns far slower than a few."""
    from tqdm import tqdm

    fix_posterior(vae, config.vae_logvar)
    per_frame_decoder(vae)
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    losses = []
    bar = tqdm(range(config.vae_steps), desc="pretrain vae", disable=not progress)
    for step in bar:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        picks = torch.randint(0, len(data), (config.vae_batch,), generator=generator)
        start = int(torch.randint(0, config.frames - config.vae_frames + 1, (1,),
                                  generator=generator))
        window = data[picks.numpy(), start : start + config.vae_frames]
        batch = clip_pixels(window).flatten(0, 1)
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.sample(generator), num_frames=config.vae_frames).sample
        loss = F.mse_loss(decoded, batch) + config.kl_weight * posterior.kl().mean()
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(
                config.vae_lr, step, config.vae_steps, config.warmup_steps, cosine=True
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        fix_posterior(vae, config.vae_logvar)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    vae.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def encode_dataset(pipe, data: np.ndarray, noise_aug: float, seed: int) -> dict[str, torch.Tensor]:
    """Posterior means and stds of every frame, the noise-augmented condition latent and the
    image embedding of every clip, so UNet steps skip the VAE and image encoder."""
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"mean": [], "std": [], "condition": [], "embeds": []}
    for start in range(0, len(data), 16):
        video = clip_pixels(data[start : start + 16])
        posterior = pipe.vae.encode(video.flatten(0, 1)).latent_dist
        parts["mean"].append(posterior.mean.unflatten(0, video.shape[:2]))
        parts["std"].append(posterior.std.unflatten(0, video.shape[:2]))
        condition, embeds = condition_inputs(pipe, video[:, 0], noise_aug, generator)
        parts["condition"].append(condition)
        parts["embeds"].append(embeds)
    return {key: torch.cat(value) for key, value in parts.items()}


def fit_scaling_factor(encoded: dict[str, torch.Tensor]) -> float:
    """1 / std of the latents, SVD's convention for ``vae.config.scaling_factor``."""
    return float(1 / encoded["mean"].std())


def latent_batches(encoded, scaling: float, batch_size: int, time_ids: list[float]):
    """``batches(step, generator)`` for ``post_tune``: random clips, posterior samples, scaled."""

    def batches(step: int, generator: torch.Generator) -> Batch:
        picks = torch.randint(0, len(encoded["mean"]), (batch_size,), generator=generator)
        mean, std = encoded["mean"][picks], encoded["std"][picks]
        latents = mean + std * torch.randn(mean.shape, generator=generator)
        return Batch(
            latents * scaling,
            encoded["condition"][picks],
            encoded["embeds"][picks],
            torch.tensor([time_ids] * batch_size),
        )

    return batches


def resumable(training: Path, config: PretrainConfig) -> bool:
    """Whether ``training`` holds the UNet checkpoint of an interrupted pretrain with ``config``
    (False: none); a ``BenchError`` for one of other settings, before any work."""
    checkpoint = training / "checkpoint.pt"
    if not checkpoint.is_file():
        return False
    record = training / "pretrain_config.json"
    saved = json.loads(record.read_text()) if record.is_file() else {}
    changed = [name for name, value in asdict(config).items() if saved.get(name) != value]
    if changed:
        raise BenchError(checkpoint, f"is of a pretrain with other settings ({', '.join(changed)} "
                         "differ)", "delete it to start over, or rerun with its settings")
    return True


def pretrain(out: Path, config: PretrainConfig, progress: bool = True) -> Path:
    """Train the embedded tiny SVD and save it to ``out`` as a diffusers pipeline folder (fp16)
    with ``pretrain.json`` (config, times, losses) beside it; continue the UNet phase from the
    checkpoint of an interrupted run with the same ``config``."""
    from diffusers import UNetSpatioTemporalConditionModel

    from variants.tiny import EMBEDDED_IMAGE_ENCODER, EMBEDDED_UNET, EMBEDDED_VAE, tiny_pipeline
    from variants.unet import ExSVDUNet

    training = out / "unet_training"
    resume = resumable(training, config)
    times = {}
    started = time.perf_counter()
    data = render_clips(range(config.train_clips), frames=config.frames, size=config.size,
                        seed=config.seed)
    times["render"] = time.perf_counter() - started
    pipe = tiny_pipeline(config.seed, unet=EMBEDDED_UNET, vae=EMBEDDED_VAE,
                         image_encoder=EMBEDDED_IMAGE_ENCODER)
    vae_losses = train_vae(pipe.vae, data, config, progress)
    times["vae"] = time.perf_counter() - started - sum(times.values())
    tune = TuneConfig(
        steps=config.unet_steps,
        frames=config.frames,
        lr=config.unet_lr,
        batch_size=config.unet_batch,
        ema_decay=config.ema,
        seed=config.seed,
        checkpoint_every=max(1, config.unet_steps // 20),
        warmup_steps=config.warmup_steps,
        cosine=True,
        objective=ObjectiveConfig(loss_weight="edm"),  # a base model: SVD's own weighting
    )
    encoded = encode_dataset(pipe, data, tune.noise_aug, config.seed)
    scaling = fit_scaling_factor(encoded)
    pipe.vae.register_to_config(scaling_factor=scaling)
    time_ids = [tune.fps_id, tune.motion_bucket, tune.noise_aug]
    batches = latent_batches(encoded, scaling, config.unet_batch, time_ids)
    times["encode"] = time.perf_counter() - started - sum(times.values())
    unet = ExSVDUNet.from_stock(pipe.unet)  # sinusoid PE, no conv: the stock computation
    with atomic_path(training / "pretrain_config.json") as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=1))
    post_tune(unet, pipe, None, tune, training, resume=resume, progress=progress,
              train_all=True, batches=batches)
    times["unet"] = time.perf_counter() - started - sum(times.values())
    ema = ExSVDUNet.from_pretrained(training / "unet_ema")
    stock = UNetSpatioTemporalConditionModel(**EMBEDDED_UNET)
    stock.load_state_dict(ema.state_dict())
    pipe.unet = stock.eval()
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    for folder in ("unet", "unet_ema"):  # merged into the pipeline's unet/ above
        shutil.rmtree(training / folder)
    for name in ("checkpoint.pt", "pretrain_config.json"):
        (training / name).unlink()
    record = {
        "config": asdict(config),
        "scaling_factor": scaling,
        "seconds": {key: round(value, 1) for key, value in times.items()},
        "vae_loss": vae_losses,
        "threads": torch.get_num_threads(),
    }
    with atomic_path(out / "pretrain.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return out
