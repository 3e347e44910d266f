"""ExSVD ablation arms on diffusers' Stable Video Diffusion: the ExVideo modules, the arm
registry, and the trainable-parameter selection.

>>> from variants import list_variants, get_variant
"""

from variants.arms import Variant, get_variant, list_variants, register_variant
from variants.unet import ExSVDUNet, parameter_groups, set_trainable

__all__ = [
    "ExSVDUNet",
    "Variant",
    "get_variant",
    "list_variants",
    "parameter_groups",
    "register_variant",
    "set_trainable",
]
