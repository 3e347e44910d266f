"""Fréchet Video Distance pieces: Fréchet distance, feature statistics, clip sampling, I3D input.

FVD (Unterthiner et al. 2018) compares Gaussians fitted to I3D Kinetics-400 features of real and
generated 16-frame clips. The feature is the 400 logits averaged over time, before softmax (see
``metrics.models.i3d``). Preprocessing follows StyleGAN-V's TorchScript detector called with
``rescale=True, resize=True``: uint8 [0, 255] -> x / 255 * 2 - 1, then a linear resize to
224x224 (no crop, no antialias).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), as pytorch-fid / StyleGAN-V compute it.

    ``scipy.linalg.sqrtm`` of S1 S2; when that is not finite (near-singular covariances, e.g.
    fewer clips than feature dimensions) it is retried with ``eps * I`` added to both. Imaginary
    parts from round-off are discarded; a ValueError is raised if one on the diagonal exceeds
    1e-3 (pytorch-fid's check), which means the square root itself failed.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.abs(np.diagonal(covmean).imag).max())
        if imag > 1e-3:
            raise ValueError(f"matrix square root failed: imaginary component {imag:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_stats(features: np.ndarray, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (rows are samples) of features [N, D], float64.

    ``ddof=1`` (unbiased, ``np.cov``) as the original TF FVD and pytorch-fid; StyleGAN-V's
    FeatureStats divides by N (``ddof=0``), which differs by a factor N / (N - 1) on the
    covariance terms (0.05% at its 2048 clips).
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] <= ddof:
        raise ValueError(f"need features [N > {ddof}, D], got shape {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False, ddof=ddof))


def sample_clip_starts(num_frames: int, clip_len: int = 16, clips: int = 1) -> list[int]:
    """First frames of ``clips`` clips of ``clip_len`` frames spread evenly over the video.

    One clip starts at frame 0 (StyleGAN-V scores generated videos on their first 16 frames);
    several are spaced evenly from 0 to the last full clip, so long videos are covered end to
    end. Starts are rounded and de-duplicated: a video too short for that many distinct clips
    gives fewer. ValueError when the video is shorter than one clip.
    """
    if clip_len < 1 or clips < 1:
        raise ValueError(f"clip_len and clips must be >= 1, got {clip_len} and {clips}")
    if num_frames < clip_len:
        raise ValueError(f"a {num_frames}-frame video is shorter than one {clip_len}-frame clip")
    last = num_frames - clip_len
    starts = np.rint(np.linspace(0, last, clips)).astype(int) if clips > 1 else [0]
    return list(dict.fromkeys(int(s) for s in starts))


def prepare_clip(frames_uint8_thwc: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> float32 I3D input [3, T, size, size] in [-1, 1].

    As StyleGAN-V's detector: x / 255 * 2 - 1, then ``interpolate(mode='trilinear',
    align_corners=False)`` to (T, size, size), which with T unchanged is plain bilinear per
    frame (half-pixel centres, no antialias). Non-square frames are stretched, not cropped
    (StyleGAN-V's datasets are square already).
    """
    frames = frames_uint8_thwc
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}"
        )
    x = frames.permute(0, 3, 1, 2).float() / 255 * 2 - 1  # [T, 3, H, W]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.permute(1, 0, 2, 3).contiguous()
