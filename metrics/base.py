"""Metric metadata, the per-video context that shares intermediates, and the thin wrapper."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch

from metrics.errors import MetricInputError
from metrics.flow import FlowField, compute_flows
from metrics.video_io import Video, as_video


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures and how to read it (pyiqa / torchmetrics style metadata)."""

    name: str
    family: str
    higher_is_better: bool | None  # None: descriptive, neither direction is better
    value_range: tuple[float, float]
    unit: str
    description: str
    series_axis: str | None = None  # "pair", "triple" or "frame": what one series entry covers
    min_frames: int = 1
    needs_flow: bool = False
    needs_reference: bool = False
    needs_condition: bool = False
    weights: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricResult:
    """One video's score and, where the metric has one, its per-pair/triple/frame series."""

    value: float
    series: np.ndarray | None = None


class VideoContext:
    """A video as float [T, 3, H, W] in [0, 1] on the device, with shared lazy intermediates.

    Flows are computed on first use and reused by every metric that needs them.
    """

    def __init__(
        self,
        video: Video,
        device: str | torch.device = "cpu",
        flow_backend=None,
        flow_batch_size: int = 16,
    ):
        self.video = video
        self.device = torch.device(device)
        self.flow_backend = flow_backend
        self.flow_batch_size = flow_batch_size

    @cached_property
    def frames(self) -> torch.Tensor:
        tensor = torch.from_numpy(self.video.frames).to(self.device)
        return tensor.permute(0, 3, 1, 2).float().div(255)

    @cached_property
    def flows(self) -> FlowField:
        if self.flow_backend is None:
            raise RuntimeError("this context was built without a flow backend")
        return compute_flows(self.frames, self.flow_backend, self.flow_batch_size)


class Metric:
    """Thin stateful wrapper over a functional core: ``update`` per video, ``compute`` the mean."""

    info: ClassVar[MetricInfo]

    def __init__(self, **options):
        self.options = options
        self.values: list[float] = []

    def score(self, ctx: VideoContext) -> MetricResult:
        """Score one video; subclasses implement ``_score`` with the functional core."""
        frames = ctx.video.num_frames
        if frames < self.info.min_frames:
            raise MetricInputError(
                ctx.video.source,
                f"{self.info.name} needs at least {self.info.min_frames} frames, got {frames}",
                "pass a longer video or leave this metric out with --metrics",
            )
        return self._score(ctx)

    def _score(self, ctx: VideoContext) -> MetricResult:
        raise NotImplementedError

    def update(self, video, flow_backend=None, device: str | torch.device = "cpu") -> MetricResult:
        """Score a Video (or uint8/float array) and keep its value for ``compute``."""
        video = video if isinstance(video, Video) else as_video(np.asarray(video))
        if self.info.needs_flow and flow_backend is None:
            from metrics.flow import create_flow_backend

            flow_backend = create_flow_backend(self.options.get("flow", "auto"), device)
        result = self.score(VideoContext(video, device, flow_backend))
        self.values.append(result.value)
        return result

    def compute(self) -> float:
        """Mean over the videos seen so far, ignoring NaN (a video with nothing to score)."""
        finite = [v for v in self.values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def reset(self) -> None:
        self.values = []


def series_result(series: torch.Tensor) -> MetricResult:
    """A result whose value is the NaN-ignoring mean of its series."""
    array = series.detach().cpu().double().numpy()
    finite = array[np.isfinite(array)]
    return MetricResult(float(finite.mean()) if finite.size else float("nan"), array)
