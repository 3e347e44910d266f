"""Video quality: per-frame PSNR / SSIM / LPIPS against a paired reference, and reference-free
per-frame curves (sharpness, contrast, colourfulness, CLIP-IQA) with their drift over time."""

from __future__ import annotations

import torch

from metrics.backbones import Lpips
from metrics.base import Metric, MetricInfo, MetricResult, VideoContext, register, series_result
from metrics.base import slope_result as _slope
from metrics.consistency import clip_frames
from metrics.errors import MetricInputError
from metrics.functional import quality
from metrics.functional.curves import ZERO, relative_to_first, slope_range


def paired(ctx: VideoContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated and reference frames over their common length."""
    count = min(len(ctx.frames), len(ctx.reference_frames))
    return ctx.frames[:count], ctx.reference_frames[:count]


def _reference_info(name, higher, value_range, unit, description, **kw) -> MetricInfo:
    return MetricInfo(
        name=name,
        family="quality",
        higher_is_better=higher,
        value_range=value_range,
        unit=unit,
        description=description,
        series_axis="frame",
        needs_reference=True,
        **kw,
    )


@register
class Psnr(Metric):
    info = _reference_info(
        "psnr",
        True,
        (0.0, 100.0),
        "dB (data range 1)",
        "PSNR of each frame against the reference frame",
    )

    def _score(self, ctx):
        return series_result(quality.psnr(*paired(ctx)))


@register
class Ssim(Metric):
    info = _reference_info(
        "ssim",
        True,
        (-1.0, 1.0),
        "SSIM (piq, 11x11 Gaussian)",
        "SSIM of each frame against the reference frame",
        min_side=quality.SSIM_MIN_SIDE,
    )

    def _score(self, ctx):
        return series_result(quality.ssim(*paired(ctx)))


@register
class Lpips(Metric):
    info = _reference_info(
        "lpips",
        False,
        (0.0, 1.0),
        "LPIPS distance",
        "LPIPS of each frame against the reference frame",
        backbone="lpips",
        min_side=Lpips.min_side,
    )

    def _score(self, ctx):
        return series_result(ctx.backbones.get("lpips")(*paired(ctx)))


class CurveDrift(Metric):
    """Slope over normalised time of a per-frame statistic relative to frame 0."""

    statistic = staticmethod(quality.sharpness)

    def _score(self, ctx):
        curve = self.statistic(ctx.frames)
        if not curve.abs().gt(ZERO).any():  # zero throughout (a grey video's colour): stable
            return _slope(torch.ones_like(curve))
        relative = relative_to_first(curve)
        if relative.isnan().all():
            name = self.statistic.__name__
            raise MetricInputError(
                ctx.video.source,
                f"frame 0 has zero {name} and later frames do not (a fade from black?), so "
                f"{self.info.name}, a drift relative to frame 0, is undefined",
                "trim the video to start where its content does, or leave this metric out "
                "with --metrics",
            )
        return _slope(relative)


def _drift_info(name, what, min_side=1) -> MetricInfo:
    return MetricInfo(
        name=name,
        family="quality",
        higher_is_better=None,
        value_range=(-float("inf"), float("inf")),
        unit="change relative to frame 0 per video length",
        series_axis="frame",
        min_frames=2,
        min_side=min_side,
        description=f"drift of {what} (relative to frame 0) over normalised time; 0 = stable",
    )


@register
class SharpnessDrift(CurveDrift):
    info = _drift_info("sharpness_drift", "sharpness (Laplacian variance)", min_side=3)
    statistic = staticmethod(quality.sharpness)


@register
class ContrastDrift(CurveDrift):
    info = _drift_info("contrast_drift", "RMS contrast")
    statistic = staticmethod(quality.contrast)


@register
class ColourfulnessDrift(CurveDrift):
    info = _drift_info("colourfulness_drift", "colourfulness (Hasler-Suesstrunk)")
    statistic = staticmethod(quality.colourfulness)


CLIP_IQA_PROMPTS = ("Good photo.", "Bad photo.")


def clip_iqa_curve(ctx: VideoContext) -> torch.Tensor:
    """CLIP-IQA per frame: softmax over (good, bad) prompt similarities x 100, good share."""

    def compute():
        text = ctx.backbones.get("clip").encode_text(list(CLIP_IQA_PROMPTS))
        logits = 100 * clip_frames(ctx) @ text.T
        return logits.softmax(dim=-1)[:, 0]

    return ctx.cached("clip_iqa_curve", compute)


@register
class ClipIqa(Metric):
    info = MetricInfo(
        name="clip_iqa",
        family="quality",
        higher_is_better=True,
        value_range=(0.0, 1.0),
        unit="probability of 'Good photo.'",
        series_axis="frame",
        backbone="clip",
        description="CLIP-IQA (Wang et al. 2023, plain prompt pair) per frame, mean",
    )

    def _score(self, ctx):
        return series_result(clip_iqa_curve(ctx))


@register
class ClipIqaDrift(Metric):
    info = MetricInfo(
        name="clip_iqa_drift",
        family="quality",
        higher_is_better=True,
        value_range=slope_range(0.0, 1.0),
        unit="probability per video length",
        series_axis="frame",
        min_frames=2,
        backbone="clip",
        description="drift of CLIP-IQA over normalised time",
    )

    def _score(self, ctx) -> MetricResult:
        return _slope(clip_iqa_curve(ctx))
