"""ExSVD ablation arms on diffusers' Stable Video Diffusion: the ExVideo modules, the arm
registry, and the trainable-parameter selection.

>>> from variants import list_variants, get_variant

The names below load on first use (PEP 562): importing a light module of the package (e.g.
``variants.tiny_data``) does not import diffusers.
"""

from __future__ import annotations

from metrics.lazy import lazy_exports

_EXPORTS = {
    "Variant": "variants.arms",
    "get_variant": "variants.arms",
    "list_variants": "variants.arms",
    "register_variant": "variants.arms",
    "ExSVDUNet": "variants.unet",
    "parameter_groups": "variants.unet",
    "set_trainable": "variants.unet",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
