"""``ExSVDUNet``: diffusers' SVD UNet with the ExVideo modules patched in by composition.

Each ``TransformerSpatioTemporalModel`` gets, per the arm's options, its ``time_proj`` replaced
(``PositionTable`` or ``CyclicSinusoid``) and an ``IdentityConv3d`` per temporal block, applied by
a forward pre-hook on that block. The options live in the model config, so ``save_pretrained`` /
``from_pretrained`` round-trip a patched model like any diffusers model.
"""

from __future__ import annotations

import inspect

from diffusers import UNetSpatioTemporalConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from torch import nn

from metrics.errors import BenchError
from variants.modules import CyclicSinusoid, IdentityConv3d, PositionTable

PE_MODES = ("sinusoid", "trainable", "cyclic")


def size_step(levels: int) -> int:
    """Pixel sizes must be multiples of this (the VAE's 8 and each UNet level's halving) and at
    least twice it, so the deepest level keeps the 2 latents the identity conv's padding needs."""
    return 8 * 2 ** (levels - 1)


def size_fits(size: int, levels: int) -> bool:
    """``size`` pixels a side survive a UNet of ``levels`` levels (``size_step``'s rule)."""
    step = size_step(levels)
    return size % step == 0 and size >= 2 * step


class ExSVDUNet(UNetSpatioTemporalConditionModel):
    """SVD's UNet plus ExVideo's options; with the defaults it is the stock model.

    Args (beyond the stock UNet's): ``exsvd_pe`` one of ``PE_MODES``; ``exsvd_table_size``
    rows of each trainable table; ``exsvd_base_length`` L, the length the base model was trained
    on (25 for SVD-XT); ``exsvd_bounce_low`` the lowest index of the bounce initialisation;
    ``exsvd_cyclic_shape`` ``sawtooth`` (t mod L) or ``triangle``; ``exsvd_identity_conv``.
    """

    @register_to_config
    def __init__(self, exsvd_pe: str = "sinusoid", exsvd_table_size: int = 128,
                 exsvd_base_length: int = 25, exsvd_bounce_low: int = 4,
                 exsvd_cyclic_shape: str = "sawtooth", exsvd_identity_conv: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if exsvd_pe not in PE_MODES:
            raise ValueError(f"unknown positional embedding {exsvd_pe!r}; use one of {PE_MODES}")
        for transformer in self.temporal_transformers():
            channels = transformer.in_channels
            if exsvd_pe == "trainable":
                transformer.time_proj = PositionTable(channels, exsvd_table_size,
                                                      exsvd_base_length, exsvd_bounce_low)
            elif exsvd_pe == "cyclic":
                transformer.time_proj = CyclicSinusoid(channels, exsvd_base_length,
                                                       exsvd_cyclic_shape)
            if exsvd_identity_conv:
                add_identity_convs(transformer)

    @staticmethod
    def _get_init_keys(input_class):
        """The stock UNet's config keys plus ours, so ``from_pretrained`` passes both through."""
        keys = set(inspect.signature(UNetSpatioTemporalConditionModel.__init__).parameters)
        return keys | set(inspect.signature(input_class.__init__).parameters)

    def temporal_transformers(self) -> list[TransformerSpatioTemporalModel]:
        return [m for m in self.modules() if isinstance(m, TransformerSpatioTemporalModel)]

    @classmethod
    def from_stock(cls, unet: UNetSpatioTemporalConditionModel, **exsvd) -> ExSVDUNet:
        """An ExSVD model holding a stock UNet's weights; the new modules keep their init.

        A base model without SVD's UNet layout is refused before any compute."""
        if not isinstance(unet, UNetSpatioTemporalConditionModel):
            raise BenchError(type(unet).__name__, "is not an SVD UNet "
                             "(UNetSpatioTemporalConditionModel), the layout ExVideo patches",
                             "use stable-video-diffusion-img2vid(-xt) or a model of that class")
        config = {k: v for k, v in unet.config.items() if not k.startswith(("_", "exsvd_"))}
        model = cls(**config, **exsvd).to(unet.device)
        if model.dtype != unet.dtype:
            model = model.to(dtype=unet.dtype)
        missing, unexpected = model.load_state_dict(unet.state_dict(), strict=False)
        extra = [k for k in missing if ".time_proj." not in k and ".exvideo_convs." not in k]
        if extra or unexpected:
            raise BenchError("base model", "does not have the stock SVD UNet layout the patch "
                             f"expects (missing {extra[:3]}, unexpected {unexpected[:3]})",
                             "start from an unpatched UNetSpatioTemporalConditionModel")
        return model


def add_identity_convs(transformer: TransformerSpatioTemporalModel) -> None:
    """One identity Conv3d per temporal block, run on its input by a forward pre-hook."""
    channels = transformer.temporal_transformer_blocks[0].norm_in.normalized_shape[0]
    transformer.exvideo_convs = nn.ModuleList(
        IdentityConv3d(channels) for _ in transformer.temporal_transformer_blocks)
    transformer.register_forward_pre_hook(_remember_frame_size, with_kwargs=True)
    for block, conv in zip(transformer.temporal_transformer_blocks, transformer.exvideo_convs,
                           strict=True):
        # a plain attribute, not a submodule (the conv is registered once, in exvideo_convs);
        # copy.deepcopy maps it to the copy's conv, and module-level hooks pickle
        object.__setattr__(block, "_exvideo_conv", conv)
        block.register_forward_pre_hook(_convolve_input, with_kwargs=True)


def _remember_frame_size(transformer, args, kwargs):
    hidden_states = args[0] if args else kwargs["hidden_states"]
    for conv in transformer.exvideo_convs:
        conv.frame_size = tuple(hidden_states.shape[-2:])


def _convolve_input(block, args, kwargs):
    hidden_states = args[0] if args else kwargs.pop("hidden_states")
    return (block._exvideo_conv(hidden_states, kwargs["num_frames"]), *args[1:]), kwargs


def parameter_groups(model: ExSVDUNet) -> dict[str, list[nn.Parameter]]:
    """Parameters by role: positional tables, position MLPs, identity convs, temporal blocks,
    and the rest (spatial blocks, temporal ResNets, embeddings)."""
    groups: dict[str, list[nn.Parameter]] = {
        "positional_tables": [], "position_mlps": [], "identity_convs": [], "temporal_blocks": [],
        "frozen_rest": []}
    for name, param in model.named_parameters():
        if ".time_proj." in name:
            groups["positional_tables"].append(param)
        elif ".time_pos_embed." in name:
            groups["position_mlps"].append(param)
        elif ".exvideo_convs." in name:
            groups["identity_convs"].append(param)
        elif ".temporal_transformer_blocks." in name:
            groups["temporal_blocks"].append(param)
        else:
            groups["frozen_rest"].append(param)
    return groups


def set_trainable(model: ExSVDUNet, tuned: bool) -> dict[str, int]:
    """The one place that decides what an arm trains: for a post-tuned arm, everything ExVideo
    trains (DiffSynth trains each whole TemporalAttentionBlock): the temporal transformer
    blocks, the position tables and the MLP they go through, the identity convs; nothing
    otherwise. Returns the parameter count per group and the trainable total."""
    counts = {}
    for group, params in parameter_groups(model).items():
        trainable = tuned and group != "frozen_rest"
        for param in params:
            param.requires_grad_(trainable)
        counts[group] = sum(p.numel() for p in params)
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts

