"""SVD's training objective (EDM v-prediction), as ExVideo post-tunes with it.

The UNet sees ``c_in * (x + sigma * n)`` with the conditioning-image latent concatenated on
channels, the noise level as ``c_noise = log(sigma) / 4``, the CLIP image embedding and the
added time ids (fps id, motion bucket, noise augmentation). Its output is a v-prediction:
``x0 = c_skip * noisy + c_out * output``. The loss is the squared x0 error, sigma drawn
log-normally, weighted by ``sqrt(sigma^2 + 1) / sigma`` as ExVideo post-tunes (DiffSynth's
``training_weight``) or by ``(sigma^2 + 1) / sigma^2``, SVD's own (EDM's lambda with
sigma_data = 1), which the embedded tiny model was pretrained with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_WEIGHTS = ("exvideo", "edm")


@dataclass(frozen=True)
class ObjectiveConfig:
    """SVD's training noise distribution (log sigma ~ N(0.7, 1.6)), condition dropout, and the
    loss weight: ExVideo's by default (post-tuning), SVD's for pretraining a base."""

    p_mean: float = 0.7
    p_std: float = 1.6
    condition_dropout: float = 0.1  # drop the image conditions, so CFG works at inference
    loss_weight: str = "exvideo"  # or "edm" (SVD's); see ``loss_weight``

    def __post_init__(self):
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ValueError(f"loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")


def loss_weight(sigma: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample weight of the squared x0 error: ExVideo's ``sqrt(sigma^2 + 1) / sigma`` or
    SVD's ``(sigma^2 + 1) / sigma^2``."""
    variance = sigma**2 + 1
    return variance.sqrt() / sigma if kind == "exvideo" else variance / sigma**2


@dataclass
class Batch:
    """Pre-encoded training clips: everything the UNet needs besides the noise.

    ``latents`` [B, T, 4, h, w] (VAE latents x scaling factor); ``condition_latent`` [B, 4, h, w]
    (VAE mode of the noise-augmented first frame, unscaled, as the pipeline makes it);
    ``image_embeds`` [B, 1, D]; ``added_time_ids`` [B, 3].
    """

    latents: torch.Tensor
    condition_latent: torch.Tensor
    image_embeds: torch.Tensor
    added_time_ids: torch.Tensor


def precondition(sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """EDM v-prediction coefficients (c_in, c_skip, c_out, c_noise) for sigma [B]."""
    variance = sigma**2 + 1
    return variance.rsqrt(), 1 / variance, -sigma * variance.rsqrt(), sigma.log() / 4


def edm_loss(unet, batch: Batch, config: ObjectiveConfig,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """One Monte-Carlo estimate of SVD's training loss on ``batch`` (scalar)."""
    latents = batch.latents
    size, frames = latents.shape[:2]
    device = generator.device if generator is not None else latents.device

    def draw(sample, shape):  # on the generator's device (a CPU one on GPUs too), then moved
        return sample(shape, generator=generator, device=device).to(latents.device)

    sigma = (draw(torch.randn, size) * config.p_std + config.p_mean).exp()
    noise = draw(torch.randn, latents.shape)
    keep = (draw(torch.rand, size) >= config.condition_dropout).to(latents.dtype)
    c_in, c_skip, c_out, c_noise = precondition(sigma)
    broadcast = (size, 1, 1, 1, 1)
    noisy = latents + sigma.view(broadcast) * noise
    condition = (batch.condition_latent * keep.view(size, 1, 1, 1))[:, None]
    model_input = torch.cat([c_in.view(broadcast) * noisy,
                             condition.expand(-1, frames, -1, -1, -1)], dim=2)
    output = unet(model_input, c_noise, batch.image_embeds * keep.view(size, 1, 1),
                  batch.added_time_ids).sample
    denoised = c_skip.view(broadcast) * noisy + c_out.view(broadcast) * output
    weight = loss_weight(sigma, config.loss_weight)
    return (weight.view(broadcast) * (denoised - latents) ** 2).mean()
