"""Memory levers for post-tuning long videos, shared by ``post_tune`` and ``bench perf tune``
(which measures them: at 128 frames 512x512 on SVD-XT only ``full`` checkpointing with frozen
weights in bf16 fits one 80 GB GPU).

``checkpointing``: "none"; "stock" (diffusers' ``enable_gradient_checkpointing``: ResNets and
the spatial transformer blocks, while the temporal blocks ExVideo trains keep their
activations); "full" (stock for the ResNets, plus every ``TransformerSpatioTemporalModel``
checkpointed whole, temporal blocks and identity convs included).
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel

CHECKPOINTING = ("none", "stock", "full")
FROZEN_DTYPES = ("float32", "bfloat16", "float16")
AUTOCAST = {"bfloat16": "bf16", "float16": "fp16"}  # the mixed precision a frozen dtype needs


def apply_checkpointing(unet, mode: str) -> None:
    """Turn on ``mode`` (one of ``CHECKPOINTING``) for a training forward of ``unet``."""
    if mode not in CHECKPOINTING:
        raise ValueError(f"unknown checkpointing {mode!r}; use one of {CHECKPOINTING}")
    if mode == "none":
        return
    unet.enable_gradient_checkpointing()
    if mode == "full":
        for module in unet.modules():
            if isinstance(module, TransformerSpatioTemporalModel):
                module.gradient_checkpointing = False  # inside a checkpoint: no second level
                checkpoint_whole(module)


def checkpoint_whole(module) -> None:
    """Checkpoint ``module`` as one unit: only its inputs are kept, its inside is recomputed.

    The module's own forward pre-hooks still run once per call (outside the checkpoint); the
    hooks of its children (the identity convs) run inside, on recompute too."""
    from torch.utils.checkpoint import checkpoint

    original = module.forward

    def forward(*args, **kwargs):
        if torch.is_grad_enabled():
            return checkpoint(original, *args, use_reentrant=False, **kwargs)
        return original(*args, **kwargs)

    module.forward = forward


def store_frozen_in(unet, dtype: str) -> None:
    """Keep the parameters that do not train in ``dtype`` (the trainable ones stay fp32
    master weights); run the model under autocast of the same dtype."""
    if dtype not in FROZEN_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {FROZEN_DTYPES}")
    for param in unet.parameters():
        if not param.requires_grad:
            param.data = param.data.to(getattr(torch, dtype))
