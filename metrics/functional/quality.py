"""Per-frame image quality: full-reference (PSNR, SSIM) and reference-free statistics.

Images are float [N, 3, H, W] in [0, 1]; every function returns one value per frame, [N].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
SSIM_MIN_SIDE = 11  # piq's Gaussian window


def psnr(frames: torch.Tensor, reference: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, data range 1."""
    mse = (frames - reference).pow(2).mean((1, 2, 3))
    return 10 * torch.log10(1 / (mse + eps))


def ssim(frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity (piq: 11x11 Gaussian window, sigma 1.5), data range 1."""
    import piq

    return piq.ssim(
        frames.clamp(0, 1),
        reference.expand_as(frames).clamp(0, 1),
        data_range=1.0,
        reduction="none",
    )


def grey(frames: torch.Tensor) -> torch.Tensor:
    return (frames * frames.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def sharpness(frames: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian of the grey image (0-255 scale): falls as frames blur."""
    kernel = frames.new_tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    return F.conv2d(grey(frames) * 255, kernel).var((1, 2, 3))


def contrast(frames: torch.Tensor) -> torch.Tensor:
    """RMS contrast: standard deviation of the grey image (0-255 scale)."""
    return (grey(frames) * 255).std((1, 2, 3))


def colourfulness(frames: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness on the 0-255 scale."""
    red, green, blue = (frames * 255).unbind(1)
    rg, yb = red - green, 0.5 * (red + green) - blue
    spread = (rg.var((1, 2)) + yb.var((1, 2))).sqrt()
    centre = (rg.mean((1, 2)).pow(2) + yb.mean((1, 2)).pow(2)).sqrt()
    return spread + 0.3 * centre
