"""Evaluate videos with a set of metrics, computing shared intermediates (flows) once."""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import torch

from metrics.base import Metric, VideoContext
from metrics.errors import MetricInputError
from metrics.flow import create_flow_backend
from metrics.temporal import METRICS
from metrics.video_io import Video, as_video, read_video


@dataclass
class VideoEvaluation:
    """Per-video scalars, per-pair/triple series, per-metric errors and provenance."""

    source: str
    num_frames: int
    height: int
    width: int
    fps: float | None
    scalars: dict[str, float] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    provenance: dict[str, str] = field(default_factory=dict)


def list_metrics(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered metric names matching a wildcard pattern (and family, if given)."""
    return [n for n in METRICS.names(pattern) if family in (None, METRICS.get(n).info.family)]


def create_metric(name: str, **options) -> Metric:
    """Instantiate a registered metric by name; unknown names list the registered ones."""
    return METRICS.get(name)(**options)


def _versions() -> dict[str, str]:
    import cv2

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "exsvd_bench": version("exsvd-bench"),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "opencv": cv2.__version__,
        "python": platform.python_version(),
    }


class Evaluator:
    """Holds the metric instances and one flow backend; call it on each video."""

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        *,
        flow: str = "auto",
        device: str = "cpu",
        flow_weights: str | None = None,
        allow_random_weights: bool = False,
        flow_batch_size: int = 16,
    ):
        self.names = METRICS.select(metrics or ["*"])
        self.metrics = {name: create_metric(name) for name in self.names}
        self.device = device
        self.flow_batch_size = flow_batch_size
        needs_flow = any(m.info.needs_flow for m in self.metrics.values())
        self.flow_backend = (
            create_flow_backend(flow, device, flow_weights, allow_random_weights)
            if needs_flow
            else None
        )
        self.provenance = {
            "flow_backend": self.flow_backend.name if self.flow_backend else "none",
            "flow_weights": self.flow_backend.weights if self.flow_backend else "none",
            "device": device,
            **{f"version_{k}": v for k, v in _versions().items()},
        }

    def __call__(self, video: Video | np.ndarray | str) -> VideoEvaluation:
        if isinstance(video, str):
            video = read_video(video)
        elif not isinstance(video, Video):
            video = as_video(video)
        ctx = VideoContext(video, self.device, self.flow_backend, self.flow_batch_size)
        result = VideoEvaluation(
            video.source,
            video.num_frames,
            video.height,
            video.width,
            video.fps,
            notes=video.notes,
            provenance=dict(self.provenance),
        )
        for name, metric in self.metrics.items():
            try:
                score = metric.score(ctx)
            except MetricInputError as err:
                result.scalars[name] = math.nan
                result.errors[name] = str(err)
                continue
            metric.values.append(score.value)
            result.scalars[name] = score.value
            if score.series is not None:
                result.series[name] = score.series
        return result


def evaluate(
    video: Video | np.ndarray | str, metrics: Sequence[str] | None = None, **options
) -> VideoEvaluation:
    """Evaluate one video (path, Video or uint8 [T, H, W, 3] array) with the given metrics."""
    return Evaluator(metrics, **options)(video)
