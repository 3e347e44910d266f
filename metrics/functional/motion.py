"""Motion amount, from the same flows: guards flicker and smoothness against static videos."""

from __future__ import annotations

import math

import torch


def flow_magnitude(forward: torch.Tensor) -> torch.Tensor:
    """Mean flow magnitude per consecutive pair in pixels per frame, [T-1]."""
    return forward.norm(dim=1).mean((1, 2))


def slowdown_ratio(per_pair: torch.Tensor, fraction: float = 1 / 3, eps: float = 1e-3) -> float:
    """Late over early motion: mean of the last ``fraction`` of pairs over the first.

    1 means constant motion, < 1 slowing down. NaN when the early part barely moves (< eps px).
    """
    count = max(1, math.floor(per_pair.numel() * fraction))
    early, late = per_pair[:count].mean(), per_pair[-count:].mean()
    return float("nan") if early < eps else float(late / early)


def direction_consistency(forward: torch.Tensor, min_motion: float = 0.05) -> torch.Tensor:
    """Cosine between the mean flow vectors of consecutive pairs, [T-2].

    NaN where either pair's mean flow is shorter than ``min_motion`` px (no direction).
    """
    mean_flow = forward.mean((2, 3))
    first, second = mean_flow[:-1], mean_flow[1:]
    cosine = torch.nn.functional.cosine_similarity(first, second, dim=1)
    moving = (first.norm(dim=1) >= min_motion) & (second.norm(dim=1) >= min_motion)
    return torch.where(moving, cosine, torch.full_like(cosine, float("nan")))
