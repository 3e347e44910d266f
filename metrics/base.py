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
from metrics.registry import Registry
from metrics.video_io import Video, as_image, as_video


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
    min_side: int = 1  # pixels, the shorter frame side (SSIM's window, LPIPS's pooling)
    needs_flow: bool = False
    needs_reference: bool = False
    needs_condition: bool = False
    needs_prompt: bool = False
    backbone: str | None = None  # "clip", "lpips" or "i3d": pretrained network it runs
    set_level: bool = False  # scored on the whole set of videos (FVD), not per video


@dataclass(frozen=True)
class MetricResult:
    """One video's score and, where the metric has one, its per-pair/triple/frame series."""

    value: float
    series: np.ndarray | None = None


class VideoContext:
    """A video as float [T, 3, H, W] in [0, 1] on the device, with shared lazy intermediates.

    Flows, network embeddings and per-frame curves are computed on first use and reused by
    every metric that needs them (``cached``). ``condition`` is uint8 [H, W, 3] (the image the
    video was generated from), ``reference`` a Video of the real continuation, ``prompt`` text.
    """

    def __init__(
        self,
        video: Video,
        device: str | torch.device = "cpu",
        flow_backend=None,
        flow_batch_size: int = 16,
        *,
        backbones=None,
        condition: np.ndarray | None = None,
        reference: Video | None = None,
        prompt: str | None = None,
    ):
        self.video = video
        self.device = torch.device(device)
        self.flow_backend = flow_backend
        self.flow_batch_size = flow_batch_size
        self.backbones = backbones
        self.condition = condition
        self.reference = reference
        self.prompt = prompt
        self._cache: dict[str, object] = {}

    def cached(self, key: str, compute):
        """Compute ``compute()`` once per context under ``key``."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @cached_property
    def frames(self) -> torch.Tensor:
        return to_tensor(self.video.frames, self.device)

    @cached_property
    def condition_tensor(self) -> torch.Tensor:
        """The condition image as float [1, 3, H, W] in [0, 1]."""
        return to_tensor(self.condition[None], self.device)

    @cached_property
    def reference_frames(self) -> torch.Tensor:
        return to_tensor(self.reference.frames, self.device)

    @cached_property
    def flows(self) -> FlowField:
        if self.flow_backend is None:
            raise RuntimeError("this context was built without a flow backend")
        height, width = self.frames.shape[-2:]
        short, long = self.flow_backend.min_sides
        if min(height, width) < short or max(height, width) < long:
            raise MetricInputError(
                self.video.source,
                f"{width}x{height} frames are too small for {self.flow_backend.name} optical "
                f"flow (it needs {short} px on the shorter side and {long} on the longer)",
                "upscale the video, or leave the flow metrics out with --metrics",
            )
        return compute_flows(self.frames, self.flow_backend, self.flow_batch_size)


def to_tensor(frames: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [T, 3, H, W] in [0, 1] on ``device``."""
    return torch.tensor(frames, device=device).permute(0, 3, 1, 2).float() / 255


class Metric:
    """Thin stateful wrapper over a functional core: ``update`` per video, ``compute`` the mean."""

    info: ClassVar[MetricInfo]

    def __init__(self, **options):
        self.options = options
        self.values: list[float] = []

    def score(self, ctx: VideoContext) -> MetricResult:
        """Score one video; subclasses implement ``_score`` with the functional core."""
        frames = ctx.video.num_frames
        for needed, given, flag in (
            ("condition", ctx.condition, "--condition"),
            ("reference", ctx.reference, "--reference"),
            ("prompt", ctx.prompt, "--prompt"),
        ):
            if getattr(self.info, f"needs_{needed}") and given is None:
                raise MetricInputError(
                    ctx.video.source, f"{self.info.name} needs a {needed}", f"pass {flag}"
                )
        if frames < self.info.min_frames:
            raise MetricInputError(
                ctx.video.source,
                f"{self.info.name} needs at least {self.info.min_frames} frames, got {frames}",
                "pass a longer video or leave this metric out with --metrics",
            )
        height, width = ctx.video.height, ctx.video.width
        if min(height, width) < self.info.min_side:
            raise MetricInputError(
                ctx.video.source,
                f"{self.info.name} needs frames of at least {self.info.min_side} px a side, "
                f"got {width}x{height}",
                "upscale the video or leave this metric out with --metrics",
            )
        return self._score(ctx)

    def _score(self, ctx: VideoContext) -> MetricResult:
        raise NotImplementedError

    def update(
        self,
        video,
        flow_backend=None,
        device: str | torch.device = "cpu",
        *,
        condition=None,
        reference=None,
        prompt: str | None = None,
    ) -> MetricResult:
        """Score a Video (or uint8/float array) and keep its value for ``compute``.

        ``condition`` (an image the video's size; default its first frame), ``reference`` (a
        video or array) and ``prompt`` for the metrics that need them; networks come from the
        options given to ``create_metric`` (``clip_weights``, ``lpips_net``, ...)."""
        video = video if isinstance(video, Video) else as_video(np.asarray(video))
        if self.info.needs_flow and flow_backend is None:
            from metrics.flow import create_flow_backend

            flow_backend = create_flow_backend(self.options.get("flow", "auto"), device)
        if self.info.backbone and not hasattr(self, "_backbones"):
            from metrics.backbones import Backbones

            names = ("allow_random_weights", "clip_weights", "clip_model", "lpips_net")
            options = {k: v for k, v in self.options.items() if k in names}
            self._backbones = Backbones(device, **options)
        if condition is not None:
            condition = as_image(condition)
        if reference is not None and not isinstance(reference, Video):
            reference = as_video(np.asarray(reference), "reference")
        context = VideoContext(
            video,
            device,
            flow_backend,
            backbones=getattr(self, "_backbones", None),
            condition=video.frames[0] if condition is None and video.num_frames else condition,
            reference=reference,
            prompt=prompt,
        )
        result = self.score(context)
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


METRICS: Registry[type[Metric]] = Registry("metric")


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a metric to the registry under ``cls.info.name``."""
    return METRICS.register(cls.info.name)(cls)


def slope_result(curve: torch.Tensor) -> MetricResult:
    """Least-squares slope of a per-frame curve over normalised time [0, 1] (NaN if < 2)."""
    from metrics.functional.curves import normalised_slope

    return MetricResult(normalised_slope(curve), curve.detach().cpu().double().numpy())
