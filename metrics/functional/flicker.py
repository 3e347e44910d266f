"""Temporal flickering: flow-based warping error and frame-difference flicker."""

from __future__ import annotations

import torch

from metrics.functional.warp import backward_warp, occlusion_mask


def warping_error(
    frames: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor
) -> torch.Tensor:
    """Warping error of Lai et al. 2018 per consecutive pair, [T-1].

    ``frames`` float [T, 3, H, W] in [0, 1]; flows [T-1, 2, H, W]. For each pair, frame t+1 is
    warped back onto frame t with the forward flow; the error is the squared RGB distance
    (summed over the 3 channels, pixels in [0, 1], so the range is [0, 3]) averaged over pixels
    that are not occluded, not on a motion boundary and land inside frame t+1. NaN for a pair
    with no such pixel.
    """
    occluded, inside = occlusion_mask(forward, backward)
    valid = (~occluded & inside).to(frames.dtype)
    warped, _ = backward_warp(frames[1:], forward)
    squared = (warped - frames[:-1]).pow(2).sum(1)
    return (squared * valid).sum((1, 2)) / valid.sum((1, 2))


def frame_difference(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of consecutive frames in 0-255 levels, [T-1] (VBench's MAE)."""
    return (frames[1:] - frames[:-1]).abs().mean((1, 2, 3)) * 255


def vbench_score(mae_levels: torch.Tensor) -> torch.Tensor:
    """VBench's (255 - MAE) / 255 score from a mean absolute error in 0-255 levels."""
    return (255 - mae_levels) / 255
