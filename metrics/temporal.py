"""The temporal metric families: flickering, motion smoothness and motion amount."""

from __future__ import annotations

from metrics.base import Metric, MetricInfo, MetricResult, VideoContext, register, series_result
from metrics.functional import flicker, motion, smoothness


@register
class WarpingError(Metric):
    info = MetricInfo(
        name="warping_error",
        family="flicker",
        higher_is_better=False,
        value_range=(0.0, 3.0),
        unit="squared RGB distance, pixels in [0, 1]",
        description="Lai et al. 2018 flow warping error, occlusion and motion boundaries masked",
        series_axis="pair",
        min_frames=2,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        flows = ctx.flows
        return series_result(flicker.warping_error(ctx.frames, flows.forward, flows.backward))


@register
class FrameDifferenceFlicker(Metric):
    info = MetricInfo(
        name="frame_diff_flicker",
        family="flicker",
        higher_is_better=True,
        value_range=(0.0, 1.0),
        unit="(255 - MAE) / 255, VBench temporal_flickering scale",
        description="consecutive-frame mean absolute difference (meaningful on static scenes)",
        series_axis="pair",
        min_frames=2,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        return series_result(flicker.vbench_score(flicker.frame_difference(ctx.frames)))


@register
class FlowAcceleration(Metric):
    info = MetricInfo(
        name="flow_acceleration",
        family="smoothness",
        higher_is_better=False,
        value_range=(0.0, float("inf")),
        unit="px / frame^2 per image diagonal",
        description="flow change along trajectories over frame triples, occlusion masked",
        series_axis="triple",
        min_frames=3,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        flows = ctx.flows
        return series_result(smoothness.flow_acceleration(flows.forward, flows.backward))


@register
class InterpolationScore(Metric):
    info = MetricInfo(
        name="interpolation_score",
        family="smoothness",
        higher_is_better=True,
        value_range=(0.0, 1.0),
        unit="(255 - MAE) / 255, VBench motion_smoothness scale",
        description="middle frames rebuilt from their neighbours with linear-motion flow",
        series_axis="triple",
        min_frames=3,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        flows = ctx.flows
        mae = smoothness.interpolation_error(ctx.frames, flows.forward, flows.backward)
        return series_result(flicker.vbench_score(mae))


@register
class MotionMagnitude(Metric):
    info = MetricInfo(
        name="motion_magnitude",
        family="motion",
        higher_is_better=None,
        value_range=(0.0, float("inf")),
        unit="px / frame",
        description="mean flow magnitude per pair (dynamic-degree analogue)",
        series_axis="pair",
        min_frames=2,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        return series_result(motion.flow_magnitude(ctx.flows.forward))


@register
class MotionSlowdown(Metric):
    info = MetricInfo(
        name="motion_slowdown",
        family="motion",
        higher_is_better=None,
        value_range=(0.0, float("inf")),
        unit="late / early mean flow magnitude",
        description="motion in the last third of pairs over the first third (1 = steady)",
        min_frames=4,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        per_pair = motion.flow_magnitude(ctx.flows.forward)
        return MetricResult(motion.slowdown_ratio(per_pair, self.options.get("fraction", 1 / 3)))


@register
class MotionDirectionConsistency(Metric):
    info = MetricInfo(
        name="motion_direction_consistency",
        family="motion",
        higher_is_better=True,
        value_range=(-1.0, 1.0),
        unit="cosine of consecutive mean flows",
        description="whether global motion keeps its direction (NaN while nearly static)",
        series_axis="triple",
        min_frames=3,
        needs_flow=True,
    )

    def _score(self, ctx: VideoContext) -> MetricResult:
        return series_result(motion.direction_consistency(ctx.flows.forward))
