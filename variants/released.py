"""The released ExVideo checkpoint (``ECNU-CILab/ExVideo-SVD-128f-v1``, ``model.fp16.safetensors``)
in DiffSynth-Studio's key names, converted to and from ``ExSVDUNet``.

DiffSynth numbers the UNet's blocks in one flat list; its temporal attention block ``blocks.N``
holds what diffusers splits over a ``TransformerSpatioTemporalModel``: the frame-position
table (``positional_embedding.embeddings``, ExVideo's [128, C] table), the identity conv
(``positional_conv``), the position MLP (``positional_embedding_proj.{0,2}``, diffusers'
``time_pos_embed.linear_{1,2}``) and the temporal transformer block with renamed parts. The
released file carries these tensors (the post-tuned ones) and is loaded on top of SVD-XT.
"""

from __future__ import annotations

import torch

from metrics.errors import BenchError

# DiffSynth's block numbers of SVD-XT's 16 temporal attention blocks, in diffusers' module order
# (down 0-2 x 2, mid, up 1-3 x 3), as in DiffSynth's SVDUNetStateDictConverter.
SVD_XT_BLOCK_IDS = (7, 17, 29, 39, 51, 61, 83, 113, 123, 133, 144, 154, 164, 175, 185, 195)

# DiffSynth suffix -> diffusers suffix, relative to blocks.N / the transformer.
_TRANSFORMER_PARTS = {
    "positional_embedding.embeddings": "time_proj.table",
    "positional_conv.weight": "exvideo_convs.0.conv.weight",
    "positional_conv.bias": "exvideo_convs.0.conv.bias",
    "positional_embedding_proj.0": "time_pos_embed.linear_1",
    "positional_embedding_proj.2": "time_pos_embed.linear_2",
}
_BLOCK_PARTS = {  # inside temporal_transformer_blocks.0
    "norm_in": "norm_in",
    "act_fn_in.proj": "ff_in.net.0.proj",
    "ff_in": "ff_in.net.2",
    "norm1": "norm1",
    "attn1.to_q": "attn1.to_q",
    "attn1.to_k": "attn1.to_k",
    "attn1.to_v": "attn1.to_v",
    "attn1.to_out": "attn1.to_out.0",
    "norm2": "norm2",
    "attn2.to_q": "attn2.to_q",
    "attn2.to_k": "attn2.to_k",
    "attn2.to_v": "attn2.to_v",
    "attn2.to_out": "attn2.to_out.0",
    "norm_out": "norm3",
    "act_fn_out.proj": "ff.net.0.proj",
    "ff_out": "ff.net.2",
}


def _transformer_prefixes(model) -> list[str]:
    """Temporal transformers in the UNet's data-flow order: down blocks, mid block, up blocks
    (``named_modules`` lists the mid block last, since the UNet registers it after up blocks)."""
    from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel

    stage = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    names = [n for n, m in model.named_modules() if isinstance(m, TransformerSpatioTemporalModel)]
    return sorted(names, key=lambda n: (stage[n.split(".")[0]],
                                        [int(p) for p in n.split(".") if p.isdigit()]))


def _rename_table(model, block_ids) -> dict[str, str]:
    """DiffSynth key prefix -> diffusers key prefix for every part of every temporal block."""
    prefixes = _transformer_prefixes(model)
    if len(prefixes) != len(block_ids):
        raise BenchError(
            "released checkpoint",
            f"the model has {len(prefixes)} temporal transformers, the block map {len(block_ids)}",
            "use the SVD-XT base model (or pass its block ids)",
        )
    table = {}
    for block, prefix in zip(block_ids, prefixes, strict=True):
        for source, target in _TRANSFORMER_PARTS.items():
            table[f"blocks.{block}.{source}"] = f"{prefix}.{target}"
        for source, target in _BLOCK_PARTS.items():
            table[f"blocks.{block}.{source}"] = f"{prefix}.temporal_transformer_blocks.0.{target}"
    return table


def _rename(key: str, table: dict[str, str]) -> str | None:
    stem, _, leaf = key.rpartition(".")
    if key in table:
        return table[key]
    return f"{table[stem]}.{leaf}" if stem in table else None


def from_diffsynth(
    state_dict: dict[str, torch.Tensor], model, block_ids=SVD_XT_BLOCK_IDS
) -> dict[str, torch.Tensor]:
    """DiffSynth-named ExVideo tensors -> ``model``'s keys; unknown keys are an error."""
    table = _rename_table(model, block_ids)
    converted, unknown = {}, []
    for key, value in state_dict.items():
        target = _rename(key, table)
        if target is None:
            unknown.append(key)
        else:
            converted[target] = value
    if unknown:
        raise BenchError(
            "released checkpoint",
            f"{len(unknown)} tensors with no place in the model, e.g. {unknown[:3]}",
            "is this ExVideo-SVD-128f-v1?",
        )
    return converted


def to_diffsynth(model, block_ids=SVD_XT_BLOCK_IDS) -> dict[str, torch.Tensor]:
    """The ExVideo-tuned tensors of ``model`` under DiffSynth's key names (for round trips)."""
    inverse = {v: k for k, v in _rename_table(model, block_ids).items()}
    state = model.state_dict()
    out = {}
    for key, value in state.items():
        target = _rename(key, inverse)
        if target is not None:
            out[target] = value
    return out


def load_released(
    model, state_dict: dict[str, torch.Tensor], block_ids=SVD_XT_BLOCK_IDS
) -> dict[str, int]:
    """Load the released tensors into an ``exsvd`` ExSVDUNet built on SVD-XT, strictly: every
    tensor must land, with its shape, and every table and identity conv must be overwritten."""
    converted = from_diffsynth(state_dict, model, block_ids)
    own = model.state_dict()
    missing = [
        k for k in own if (".time_proj." in k or ".exvideo_convs." in k) and k not in converted
    ]
    if missing:
        raise BenchError(
            "released checkpoint",
            f"{len(missing)} ExVideo tensors absent (they "
            f"would stay at their init), e.g. {missing[:2]}",
            "build the exsvd arm with table size 128 and identity convs",
        )
    for key, value in converted.items():
        if key not in own or own[key].shape != value.shape:
            raise BenchError(
                "released checkpoint",
                f"{key}: shape {tuple(value.shape)} does not fit the model",
                "check the arm's table size and base model",
            )
    model.load_state_dict(
        {**own, **{k: v.to(own[k].dtype) for k, v in converted.items()}}, strict=True
    )
    return {"tensors": len(converted), "parameters": sum(v.numel() for v in converted.values())}
