"""Video-condition consistency: CLIP similarity to the condition image and between frames,
CLIP text score, and the weight-free SSIM companion plus LPIPS to the condition."""

from __future__ import annotations

import torch

from metrics.backbones import Lpips
from metrics.base import Metric, MetricInfo, MetricResult, VideoContext, register, series_result
from metrics.base import slope_result as _slope
from metrics.functional import consistency, quality
from metrics.functional.curves import slope_range


def clip_frames(ctx: VideoContext) -> torch.Tensor:
    """Unit CLIP embeddings of every frame, encoded once per video."""
    return ctx.cached("clip_frames", lambda: ctx.backbones.get("clip").encode_images(ctx.frames))


def clip_condition_curve(ctx: VideoContext) -> torch.Tensor:
    def compute():
        encoder = ctx.backbones.get("clip")
        return consistency.cosine_to_condition(
            clip_frames(ctx), encoder.encode_images(ctx.condition_tensor)
        )

    return ctx.cached("clip_condition_curve", compute)


def ssim_condition_curve(ctx: VideoContext) -> torch.Tensor:
    return ctx.cached(
        "ssim_condition_curve", lambda: quality.ssim(ctx.frames, ctx.condition_tensor)
    )


def lpips_condition_curve(ctx: VideoContext) -> torch.Tensor:
    return ctx.cached(
        "lpips_condition_curve",
        lambda: ctx.backbones.get("lpips")(ctx.frames, ctx.condition_tensor),
    )


def _info(name, higher, value_range, unit, description, axis="frame", **kw) -> MetricInfo:
    return MetricInfo(
        name=name,
        family="consistency",
        higher_is_better=higher,
        value_range=value_range,
        unit=unit,
        description=description,
        series_axis=axis,
        needs_condition=True,
        **kw,
    )


@register
class ClipCondition(Metric):
    info = _info(
        "clip_condition",
        True,
        (-1.0, 1.0),
        "cosine",
        "CLIP image similarity of each frame to the condition image, mean",
        backbone="clip",
    )

    def _score(self, ctx):
        return series_result(clip_condition_curve(ctx))


@register
class ClipConditionMin(Metric):
    info = _info(
        "clip_condition_min",
        True,
        (-1.0, 1.0),
        "cosine",
        "lowest CLIP similarity of any frame to the condition image",
        backbone="clip",
    )

    def _score(self, ctx):
        curve = clip_condition_curve(ctx)
        return MetricResult(float(curve.min()), curve.double().cpu().numpy())


@register
class ClipConditionSlope(Metric):
    info = _info(
        "clip_condition_slope",
        True,
        slope_range(-1.0, 1.0),
        "cosine per video length",
        "drift of the CLIP condition similarity over normalised time (decay < 0)",
        backbone="clip",
        min_frames=2,
    )

    def _score(self, ctx):
        return _slope(clip_condition_curve(ctx))


@register
class ClipFrameConsistency(Metric):
    info = MetricInfo(
        name="clip_frame_consistency",
        family="consistency",
        higher_is_better=True,
        value_range=(-1.0, 1.0),
        unit="cosine",
        series_axis="pair",
        min_frames=2,
        description="CLIP similarity of consecutive frames (subject consistency)",
        backbone="clip",
    )

    def _score(self, ctx):
        return series_result(consistency.consecutive_cosine(clip_frames(ctx)))


@register
class ClipText(Metric):
    info = MetricInfo(
        name="clip_text",
        family="consistency",
        higher_is_better=True,
        value_range=(0.0, 100.0),
        unit="100 * max(cosine, 0)",
        series_axis="frame",
        needs_prompt=True,
        backbone="clip",
        description="CLIP score of each frame against the prompt",
    )

    def _score(self, ctx):
        text = ctx.backbones.get("clip").encode_text([ctx.prompt])
        return series_result(consistency.clip_score(clip_frames(ctx), text))


@register
class SsimCondition(Metric):
    info = _info(
        "ssim_condition",
        True,
        (-1.0, 1.0),
        "SSIM",
        "SSIM of each frame to the condition image, mean (weight-free)",
        min_side=quality.SSIM_MIN_SIDE,
    )

    def _score(self, ctx):
        return series_result(ssim_condition_curve(ctx))


@register
class SsimConditionSlope(Metric):
    info = _info(
        "ssim_condition_slope",
        True,
        slope_range(-1.0, 1.0),
        "SSIM per video length",
        "drift of SSIM to the condition over normalised time (weight-free)",
        min_frames=2,
        min_side=quality.SSIM_MIN_SIDE,
    )

    def _score(self, ctx):
        return _slope(ssim_condition_curve(ctx))


@register
class LpipsCondition(Metric):
    info = _info(
        "lpips_condition",
        False,
        (0.0, 1.0),
        "LPIPS distance",
        "LPIPS of each frame to the condition image, mean",
        backbone="lpips",
        min_side=Lpips.min_side,
    )

    def _score(self, ctx):
        return series_result(lpips_condition_curve(ctx))


@register
class LpipsConditionSlope(Metric):
    info = _info(
        "lpips_condition_slope",
        False,
        slope_range(0.0, 1.0),
        "LPIPS per video length",
        "drift of LPIPS to the condition over normalised time (growth > 0)",
        backbone="lpips",
        min_frames=2,
        min_side=Lpips.min_side,
    )

    def _score(self, ctx):
        return _slope(lpips_condition_curve(ctx))
