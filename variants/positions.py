"""Frame-position schedules for the temporal positional embeddings of the ExSVD arms."""

from __future__ import annotations

import torch


def bounce_positions(count: int, base_length: int = 25, low: int = 4) -> torch.Tensor:
    """ExVideo's initial positions: 0..L-1 as they are, then a triangle wave between ``low``
    and L-1 (L-1, L-2, ..., low, low+1, ..., L-1, ...), so no frame gets an index SVD never saw.

    With L = 25 and low = 4 the wave has period 40, as in ExVideo.
    """
    top = base_length - 1
    if not 0 <= low < top:
        raise ValueError(f"low must lie in [0, {top}), got {low}")
    period = 2 * (top - low)
    index = torch.arange(count)
    beyond = (index - top).clamp(min=0) % period
    wave = torch.where(beyond <= top - low, top - beyond, low + (beyond - (top - low)))
    return torch.where(index <= top, index, wave)


CYCLIC_SHAPES = ("sawtooth", "triangle")


def cyclic_positions(count: int, period: int, shape: str = "sawtooth") -> torch.Tensor:
    """``t mod L`` (sawtooth) or a triangle wave 0, 1, ..., L-1, L-2, ..., 1, 0, 1, ... over L."""
    index = torch.arange(count)
    if shape == "sawtooth":
        return index % period
    if shape == "triangle":
        span = max(1, 2 * (period - 1))
        phase = index % span
        return torch.where(phase < period, phase, span - phase)
    raise ValueError(f"unknown cyclic shape {shape!r}; use 'sawtooth' or 'triangle'")
