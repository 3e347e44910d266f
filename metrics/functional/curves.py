"""Per-frame curves: drift slopes over normalised time and values relative to frame 0."""

from __future__ import annotations

import torch


def slope_range(low: float, high: float) -> tuple[float, float]:
    """The values ``normalised_slope`` can take for a curve within [low, high]: a step from low
    to high halfway through approaches 1.5 x (high - low) as the curve gets long."""
    bound = 1.5 * (high - low)
    return (-bound, bound)


def normalised_slope(curve: torch.Tensor) -> float:
    """Least-squares slope of ``curve`` [T] against time t/(T-1) in [0, 1]; NaN when T < 2.

    A curve that falls from a to b linearly over the video has slope b - a, whatever its length.
    """
    values = curve.detach().double().flatten()
    if values.numel() < 2:
        return float("nan")
    time = torch.linspace(0, 1, values.numel(), dtype=torch.float64, device=values.device)
    centred = time - time.mean()
    return float((centred * (values - values.mean())).sum() / centred.pow(2).sum())


ZERO = 1e-8  # a statistic at or below this is taken as zero


def relative_to_first(curve: torch.Tensor, eps: float = ZERO) -> torch.Tensor:
    """``curve / curve[0]`` (1 at frame 0); NaN everywhere when frame 0 is ~0."""
    first = curve[0]
    if first.abs() < eps:
        return torch.full_like(curve, float("nan"))
    return curve / first
