"""Warping and flow-consistency masks shared by the temporal metrics (pure tensor functions).

Images are float [N, C, H, W]; flows float [N, 2, H, W] in pixels, x then y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_points(height: int, width: int, flow: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates x + flow(x), [N, 2, H, W]."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    return flow + torch.stack([xs, ys])


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample ``image`` at x + flow(x).

    Returns the warped image and a bool mask [N, H, W] of points that land inside the image
    (all four bilinear neighbours exist: 0 <= x <= W-1, 0 <= y <= H-1).
    """
    height, width = image.shape[-2:]
    points = sample_points(height, width, flow)
    inside = (
        (points[:, 0] >= 0)
        & (points[:, 0] <= width - 1)
        & (points[:, 1] >= 0)
        & (points[:, 1] <= height - 1)
    )
    grid = torch.stack(
        [2 * points[:, 0] / max(width - 1, 1) - 1, 2 * points[:, 1] / max(height - 1, 1) - 1],
        dim=-1,
    )
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, inside


def squared_norm(flow: torch.Tensor) -> torch.Tensor:
    """|flow|^2 per pixel, [N, H, W]."""
    return flow.pow(2).sum(1)


def flow_gradient_energy(flow: torch.Tensor) -> torch.Tensor:
    """|grad u|^2 + |grad v|^2 with forward differences (zero at the last row/column)."""
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[..., :, :-1] = flow[..., :, 1:] - flow[..., :, :-1]
    dy[..., :-1, :] = flow[..., 1:, :] - flow[..., :-1, :]
    return (dx.pow(2) + dy.pow(2)).sum(1)


def occlusion_mask(
    forward: torch.Tensor, backward: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lai et al. 2018 occlusion and motion-boundary test on the source frame's grid.

    ``forward`` maps frame 1 -> 2 (frame-1 grid), ``backward`` maps 2 -> 1 (frame-2 grid).
    Returns (occluded, inside) bool [N, H, W]: occluded where the round trip fails,
    |F21(x + F12) + F12|^2 > 0.01 (|F21(x + F12)|^2 + |F12|^2) + 0.5, or on a motion
    boundary, |grad u|^2 + |grad v|^2 > 0.01 |F12|^2 + 0.002; ``inside`` where x + F12(x)
    lands in the image.
    """
    backward_at_target, inside = backward_warp(backward, forward)
    round_trip = squared_norm(backward_at_target + forward)
    inconsistent = (
        round_trip > 0.01 * (squared_norm(backward_at_target) + squared_norm(forward)) + 0.5
    )
    boundary = flow_gradient_energy(forward) > 0.01 * squared_norm(forward) + 0.002
    return inconsistent | boundary, inside


def compose(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow of two steps, first(x) + second(x + first(x)); returns (flow, inside) like warp."""
    second_at_target, inside = backward_warp(second, first)
    return first + second_at_target, inside
