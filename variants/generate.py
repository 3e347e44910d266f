"""Image-to-video generation with an arm's UNet through diffusers' StableVideoDiffusionPipeline,
writing mp4 files plus the manifest the metrics stage reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from metrics.atomic import atomic_path
from metrics.errors import BenchError, first_line

SVD_XT = "stabilityai/stable-video-diffusion-img2vid-xt"


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings (SVD's defaults; ExVideo used 50 steps, fps 30, 128 frames)."""

    frames: int
    height: int
    width: int
    steps: int = 25
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    fps_id: int = 7
    motion_bucket: int = 127
    noise_aug: float = 0.02
    decode_chunk: int = 8  # frames decoded at once by the temporal VAE decoder
    output_fps: float = 8.0
    dtype: str = "float32"  # bfloat16 / float16 on GPU
    cpu_offload: bool = False


def load_base_pipeline(source: str = SVD_XT, dtype: torch.dtype = torch.float32):
    """The base SVD pipeline from a local folder or the Hugging Face cache (never a download)."""
    from diffusers import StableVideoDiffusionPipeline

    try:
        return StableVideoDiffusionPipeline.from_pretrained(
            source, dtype=dtype, local_files_only=True
        )
    except (OSError, ValueError) as err:
        if Path(source).is_dir():  # there, but damaged or incomplete
            raise BenchError(source, f"cannot be loaded as an SVD pipeline ({first_line(err)})",
                             "give a complete pipeline folder (save_pretrained), or download "
                             "it again") from None
        raise BenchError(
            source,
            f"base SVD pipeline not found as a folder or in the Hugging Face cache "
            f"({type(err).__name__})",
            f"run 'huggingface-cli download {SVD_XT}' where the hub is reachable, or pass the "
            "folder of a downloaded copy",
        ) from None


def with_unet(pipeline, unet, config: GenerationConfig, device: str | torch.device = "cpu"):
    """A pipeline sharing the base components but running ``unet`` (cast to ``config.dtype``,
    which must be the base pipeline's: ``load_base_pipeline(dtype=...)``); SDPA attention is the
    diffusers default on PyTorch 2; ``cpu_offload`` moves each model to the GPU only in use."""
    from diffusers import StableVideoDiffusionPipeline

    dtype = getattr(torch, config.dtype)
    if pipeline.vae.dtype != dtype:
        raise BenchError(
            f"generation dtype {config.dtype}",
            f"differs from the base pipeline's {str(pipeline.vae.dtype).removeprefix('torch.')}",
            f"load the base pipeline with load_base_pipeline(..., dtype=torch.{config.dtype})",
        )
    pipe = StableVideoDiffusionPipeline(
        vae=pipeline.vae,
        image_encoder=pipeline.image_encoder,
        unet=unet if unet.dtype == dtype else unet.to(dtype=dtype),  # to() warns even then
        scheduler=pipeline.scheduler,
        feature_extractor=pipeline.feature_extractor,
    )
    pipe.set_progress_bar_config(disable=True)
    if config.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


def generate(
    pipe,
    condition: np.ndarray,
    seed: int,
    config: GenerationConfig,
    *,
    start: tuple[torch.Tensor, list[float]] | None = None,
) -> np.ndarray:
    """uint8 [T, H, W, 3] from a uint8 [H, W, 3] condition image; deterministic per seed.

    ``start`` = (latents [1, T, C, h, w], sigmas) samples from given noisy latents on the given
    schedule (descending, ending at 0) instead of from pure noise (a diagnostic; SDEdit)."""
    from PIL import Image

    generator = torch.Generator("cpu").manual_seed(seed)
    if start is not None:
        latents, sigmas = start
        pipe.scheduler.set_timesteps(sigmas=sigmas)  # the pipeline scales latents by this sigma
        start_options = {"latents": latents / pipe.scheduler.init_noise_sigma, "sigmas": sigmas}
    else:
        start_options = {"num_inference_steps": config.steps}
    frames = pipe(
        Image.fromarray(condition),
        height=config.height,
        width=config.width,
        num_frames=config.frames,
        **start_options,
        min_guidance_scale=config.min_guidance,
        max_guidance_scale=config.max_guidance,
        fps=config.fps_id,
        motion_bucket_id=config.motion_bucket,
        noise_aug_strength=config.noise_aug,
        decode_chunk_size=config.decode_chunk,
        generator=generator,
        output_type="np",
    ).frames[0]
    return np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255), 0, 255).astype(np.uint8)


def state_sha256(module: torch.nn.Module) -> str:
    """A checksum of a model's weights: sha256 over its state dict in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def generate_arm(
    pipe,
    arm: str,
    conditions: dict[str, np.ndarray],
    seeds: list[int],
    config: GenerationConfig,
    out_dir: Path,
    *,
    progress=None,
) -> Path:
    """Generate every (condition, seed) for one arm into ``out_dir``; returns the manifest.

    Videos are written losslessly (libx264rgb) so the metrics see exactly what was generated;
    the manifest records the arm, condition, seed, settings and checksums of weights and files.
    """
    from metrics.video_io import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {
        "unet": state_sha256(pipe.unet),
        "vae": state_sha256(pipe.vae),
        "image_encoder": state_sha256(pipe.image_encoder),
    }
    entries = []
    for name, condition in conditions.items():
        for seed in seeds:
            video = generate(pipe, condition, seed, config)
            path = write_video(
                out_dir / f"{name}_seed{seed}.mp4", video, config.output_fps, lossless=True
            )
            entries.append(
                {
                    "arm": arm,
                    "condition": name,
                    "condition_sha256": sha256_bytes(condition.tobytes()),
                    "seed": seed,
                    "file": path.name,
                    "video_sha256": sha256_bytes(path.read_bytes()),
                }
            )
            if progress:
                progress(entries[-1])
    manifest = {
        "arm": arm,
        "generation": asdict(config),
        "weights_sha256": weights,
        "videos": entries,
    }
    return write_json(out_dir / "manifest.json", manifest)


def write_json(path: Path, payload: dict) -> Path:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    return path
