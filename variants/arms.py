"""The ablation arms and their registry.

An arm says which positional embedding its temporal transformers use, whether the identity 3D
convolution is there, and whether it is post-tuned. Register your own in a few lines::

    from variants import Variant, register_variant

    register_variant(Variant("exsvd-triangle-pe", "cyclic PE as a triangle wave",
                             pe="cyclic", cyclic_shape="triangle", identity_conv=True,
                             post_tuned=True))
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics.registry import Registry
from variants.positions import CYCLIC_SHAPES
from variants.unet import PE_MODES, ExSVDUNet


@dataclass(frozen=True)
class Variant:
    """One arm of the ablation."""

    name: str
    description: str
    pe: str = "sinusoid"
    identity_conv: bool = False
    post_tuned: bool = False
    extended: bool = True  # generates at the extended length (False: the base length L)
    cyclic_shape: str = "sawtooth"

    def __post_init__(self):
        if self.pe not in PE_MODES:
            raise ValueError(f"{self.name}: unknown pe {self.pe!r}; use one of {PE_MODES}")
        if self.cyclic_shape not in CYCLIC_SHAPES:
            raise ValueError(f"{self.name}: unknown cyclic_shape {self.cyclic_shape!r}; use one "
                             f"of {CYCLIC_SHAPES}")

    def unet_options(self, base_length: int, table_size: int, bounce_low: int) -> dict:
        """The ``ExSVDUNet`` config options of this arm."""
        return {"exsvd_pe": self.pe, "exsvd_identity_conv": self.identity_conv,
                "exsvd_base_length": base_length, "exsvd_table_size": table_size,
                "exsvd_bounce_low": bounce_low, "exsvd_cyclic_shape": self.cyclic_shape}

    def build(self, base_unet, *, base_length: int, table_size: int = 128,
              bounce_low: int = 4) -> ExSVDUNet:
        """This arm's UNet from a stock SVD UNet (new modules at their identity init)."""
        return ExSVDUNet.from_stock(base_unet, **self.unet_options(base_length, table_size,
                                                                   bounce_low))


VARIANTS: Registry[Variant] = Registry("arm")


def register_variant(variant: Variant) -> Variant:
    return VARIANTS.register(variant.name)(variant)


def list_variants(pattern: str = "*") -> list[str]:
    return VARIANTS.names(pattern)


def get_variant(name: str) -> Variant:
    """The registered arm ``name``; unknown names list the registered ones."""
    return VARIANTS.get(name)


for _arm in (
    Variant("svd", "base SVD at its native length L", extended=False),
    Variant("svd-long", "SVD run past L, sinusoid extrapolated, no tuning"),
    Variant("exsvd", "ExVideo: trainable PE (bounce init) + identity 3D conv, post-tuned",
            pe="trainable", identity_conv=True, post_tuned=True),
    Variant("exsvd-no-idconv", "REMOVE: ExVideo without the identity 3D conv",
            pe="trainable", post_tuned=True),
    Variant("exsvd-static-pe", "REPLACE: SVD sinusoid at 0..T-1, frozen, + identity conv",
            pe="sinusoid", identity_conv=True, post_tuned=True),
    Variant("exsvd-cyclic-pe", "REPLACE: SVD sinusoid at t mod L, frozen, + identity conv",
            pe="cyclic", identity_conv=True, post_tuned=True),
):
    register_variant(_arm)
