"""What the embedded tiny model learned, measured with the project's own metrics.

On held-out clips at the base length: VAE reconstruction PSNR; generated frame 0 against the
condition image (PSNR); flow direction consistency between consecutive pairs on pans; mean
flow magnitude of generated clips against the data passed through the VAE (what the generator
can at best reproduce) and the raw data. DIS flow, so no weights are needed. As a diagnostic,
the motion kept when sampling starts from each clip's own latents at a given noise level.
"""

from __future__ import annotations

import numpy as np
import torch

from metrics.base import to_tensor
from metrics.flow import DISFlow, compute_flows
from metrics.functional.motion import direction_consistency, flow_magnitude
from metrics.functional.quality import psnr
from variants.generate import GenerationConfig, generate, with_unet


@torch.no_grad()
def encode_mode(vae, clip: np.ndarray) -> torch.Tensor:
    """Posterior modes [T, C, h, w] of a uint8 clip's frames (unscaled)."""
    pixels = to_tensor(clip).to(vae.device, vae.dtype) * 2 - 1
    return vae.encode(pixels).latent_dist.mode()


@torch.no_grad()
def decode_clip(vae, latents: torch.Tensor) -> np.ndarray:
    """uint8 clip [T, H, W, 3] from unscaled latents [T, C, h, w] (temporal decoding)."""
    decoded = vae.decode(latents, num_frames=len(latents)).sample.float().clamp(-1, 1)
    return ((decoded + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """uint8 clip [T, H, W, 3] through the VAE (posterior mode, temporal decoding of the clip)."""
    return decode_clip(vae, encode_mode(vae, clip))


@torch.no_grad()
def noised_start(pipe, modes: torch.Tensor, sigma: float, steps: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
    """``generate``'s ``start`` for SDEdit: a clip's posterior modes [T, C, h, w] (``encode_mode``)
    scaled, plus noise at the first sigma <= ``sigma`` of the ``steps``-step schedule, and the
    rest of it."""
    pipe.scheduler.set_timesteps(steps)
    schedule = pipe.scheduler.sigmas.tolist()
    sigmas = [value for value in schedule if value <= sigma]
    latents = modes[None] * pipe.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype)
    return latents + sigmas[0] * noise.to(latents.device), sigmas


def motion(clip: np.ndarray, backend) -> tuple[float, float]:
    """(mean flow magnitude in px/frame, mean direction consistency) of a uint8 clip."""
    forward = compute_flows(to_tensor(clip), backend).forward
    return float(flow_magnitude(forward).mean()), float(direction_consistency(forward).nanmean())


def sampler(pipe, clips: np.ndarray, steps: int) -> tuple[GenerationConfig, object]:
    """Generation settings for clips [N, T, H, W, 3] (SVD's defaults, the whole clip decoded at
    once) and the pipeline that generates with them."""
    frames, height, width = clips.shape[1:4]
    config = GenerationConfig(frames=frames, height=height, width=width, steps=steps,
                              decode_chunk=frames)
    return config, with_unet(pipe, pipe.unet, config)


def evaluate_tiny(pipe, clips: np.ndarray, kinds: list[str], *, steps: int = 25,
                  seed: int = 0) -> dict[str, float]:
    """The learning report on uint8 clips [N, T, H, W, 3] of the given motion kinds."""
    config, runner = sampler(pipe, clips, steps)
    backend = DISFlow()
    rows = []
    for index, clip in enumerate(clips):
        recon = reconstruct(pipe.vae, clip)
        video = generate(runner, clip[0], seed + index, config)
        rows.append({
            "vae_psnr": float(psnr(to_tensor(recon), to_tensor(clip)).mean()),
            "frame0_psnr": float(psnr(to_tensor(video[:1]), to_tensor(clip[:1]))),
            "generated": motion(video, backend),
            "through_vae": motion(recon, backend),
            "data": motion(clip, backend),
        })
    pans = [row for row, kind in zip(rows, kinds, strict=True) if kind == "pan"]

    def mean(key, part=None, subset=rows):
        return float(np.mean([row[key] if part is None else row[key][part] for row in subset]))

    return {
        "vae_psnr": mean("vae_psnr"),
        "frame0_psnr": mean("frame0_psnr"),
        "pan_direction_consistency": mean("generated", 1, pans),
        "data_pan_direction_consistency": mean("through_vae", 1, pans),
        "flow_magnitude": mean("generated", 0),
        "data_flow_magnitude": mean("through_vae", 0),
        "raw_data_flow_magnitude": mean("data", 0),
    }


def motion_from_noise(pipe, clips: np.ndarray, kinds: list[str], sigmas: list[float], *,
                      steps: int = 25, seed: int = 0) -> dict[str, dict[str, float]]:
    """Where generation loses motion (a diagnostic): each held-out clip's own latents noised to
    each sigma (the schedule's first sigma at or below it, reported as ``sigma_used``) and
    sampled from there (the rest of the ``steps``-step schedule, the pipeline's sampler and
    guidance); pan direction consistency and flow against the data's per sigma.
    A model that keeps the data's motion from small sigmas but not from large ones loses it in
    deciding the motion; one that loses it from small sigmas too cannot render it."""
    config, runner = sampler(pipe, clips, steps)
    backend = DISFlow()
    modes = [encode_mode(pipe.vae, clip) for clip in clips]  # once per clip, for every sigma
    data = [motion(decode_clip(pipe.vae, clip_modes), backend) for clip_modes in modes]
    report = {}
    for sigma in sigmas:
        moved = []
        for index, clip in enumerate(clips):
            generator = torch.Generator().manual_seed(seed + index)
            start = noised_start(pipe, modes[index], sigma, steps, generator)
            used = start[1][0]  # the schedule's first sigma at or below the one asked for
            moved.append(motion(generate(runner, clip[0], seed + index, config, start=start),
                                backend))
        pans = [row for row, kind in zip(moved, kinds, strict=True) if kind == "pan"]
        report[f"{sigma:g}"] = {
            "sigma_used": float(used),
            "pan_direction_consistency": float(np.mean([row[1] for row in pans])),
            "flow_ratio": float(np.mean([row[0] for row in moved]) /
                                np.mean([row[0] for row in data])),
        }
    return report
