"""Video-condition consistency on embeddings and images (pure tensor functions)."""

from __future__ import annotations

import torch


def cosine_to_condition(frames: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every frame embedding [T, D] to the condition embedding [1, D], [T]
    (clamped to [-1, 1]: rounding can overshoot by an ulp)."""
    cosine = torch.nn.functional.cosine_similarity(frames, condition.expand_as(frames), dim=1)
    return cosine.clamp(-1, 1)


def consecutive_cosine(frames: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of consecutive frame embeddings, [T-1] (subject consistency)."""
    return torch.nn.functional.cosine_similarity(frames[:-1], frames[1:], dim=1).clamp(-1, 1)


def clip_score(frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """CLIP score per frame, 100 * max(cos(frame, text), 0) (torchmetrics' convention), [T]."""
    return 100 * cosine_to_condition(frames, text).clamp(min=0)
