"""Motion smoothness: flow acceleration along trajectories and flow-based interpolation error."""

from __future__ import annotations

import torch

from metrics.functional.warp import backward_warp, compose, occlusion_mask


def flow_acceleration(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """Mean acceleration along trajectories per frame triple, [T-2], per image diagonal.

    a(x) = F(t+1 -> t+2)(x + F(t -> t+1)(x)) - F(t -> t+1)(x), averaged in magnitude over
    pixels whose trajectory is visible in both pairs (Lai et al. occlusion test on each pair),
    divided by the image diagonal so the value is resolution-independent.
    """
    height, width = forward.shape[-2:]
    occluded, inside = occlusion_mask(forward, backward)
    visible = (~occluded & inside).float()
    first, second = forward[:-1], forward[1:]
    next_flow, lands = backward_warp(second, first)
    next_visible, _ = backward_warp(visible[1:, None], first)
    valid = (visible[:-1] > 0) & lands & (next_visible[:, 0] > 0.999)
    magnitude = (next_flow - first).norm(dim=1) / (height**2 + width**2) ** 0.5
    valid = valid.float()
    return (magnitude * valid).sum((1, 2)) / valid.sum((1, 2))


def interpolate_middle(
    frames: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rebuild frame t+1 from frames t and t+2 assuming linear motion, [T-2, 3, H, W].

    The flows t -> t+2 and t+2 -> t are composed from the consecutive ones; the middle frame's
    flows to its neighbours follow Super SloMo's approximation at time 1/2:
    F(m -> t) = (F(t+2 -> t) - F(t -> t+2)) / 4 and F(m -> t+2) = -F(m -> t). Both neighbours
    are warped and averaged where both land in the image. Returns (frames, covered mask).
    """
    flow_02, _ = compose(forward[:-1], forward[1:])
    flow_20, _ = compose(backward[1:], backward[:-1])
    to_first = (flow_20 - flow_02) / 4
    from_first, in_first = backward_warp(frames[:-2], to_first)
    from_last, in_last = backward_warp(frames[2:], -to_first)
    w_first, w_last = in_first.float()[:, None], in_last.float()[:, None]
    total = w_first + w_last
    middle = (from_first * w_first + from_last * w_last) / total.clamp(min=1)
    return middle, total[:, 0] > 0


def interpolation_error(
    frames: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor
) -> torch.Tensor:
    """Mean absolute error (0-255 levels) of each flow-interpolated middle frame, [T-2]."""
    middle, covered = interpolate_middle(frames, forward, backward)
    error = (middle - frames[1:-1]).abs().mean(1) * 255
    covered = covered.float()
    return (error * covered).sum((1, 2)) / covered.sum((1, 2))
