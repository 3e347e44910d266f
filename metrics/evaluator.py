"""Evaluate videos with a set of metrics, computing shared intermediates once per video."""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import torch
import torch.nn.functional as F

import metrics.consistency
import metrics.fvd
import metrics.quality
import metrics.temporal  # noqa: F401  (the three families register their metrics on import)
from metrics.backbones import Backbones
from metrics.base import METRICS, Metric, VideoContext
from metrics.errors import BenchError, MetricInputError, WeightsNotFoundError
from metrics.flow import create_flow_backend
from metrics.video_io import Video, as_image, as_video, read_video


@dataclass
class VideoEvaluation:
    """Per-video scalars, per-frame/pair/triple series, errors, unavailable metrics, provenance."""

    source: str
    num_frames: int
    height: int
    width: int
    fps: float | None
    scalars: dict[str, float] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    provenance: dict[str, str] = field(default_factory=dict)


FAMILIES = ("flicker", "smoothness", "motion", "consistency", "quality")


def _family_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: FAMILIES.index(METRICS.get(n).info.family))


def list_metrics(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered metric names matching a wildcard pattern (and family, if given), by family."""
    names = [n for n in METRICS.names(pattern) if family in (None, METRICS.get(n).info.family)]
    return _family_order(names)


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


def select_metrics(
    patterns: Sequence[str] | None, *, with_reference: bool, with_prompt: bool
) -> list[str]:
    """Expand patterns; the default set leaves out metrics whose input was not given, while a
    metric named explicitly without its input is a setup error."""
    chosen = _family_order(METRICS.select(patterns or ["*"]))
    missing = {"reference": not with_reference, "prompt": not with_prompt}
    kept = []
    for name in chosen:
        info = METRICS.get(name).info
        lacking = [
            what for what, absent in missing.items() if absent and getattr(info, f"needs_{what}")
        ]
        if not lacking:
            kept.append(name)
        elif patterns and name in patterns:
            raise BenchError(name, f"needs a {lacking[0]}", f"pass --{lacking[0]}")
    return kept


class Evaluator:
    """Holds the metric instances, one flow backend and the pretrained networks; call it on each
    video. Metrics whose weights do not resolve are reported unavailable, the rest still run."""

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        *,
        flow: str = "auto",
        device: str = "cpu",
        flow_weights: str | None = None,
        allow_random_weights: bool = False,
        flow_batch_size: int = 16,
        clip_weights: str | None = None,
        clip_model: str = "ViT-B-32",
        lpips_net: str = "alex",
        with_reference: bool = False,
        with_prompt: bool = False,
        resize_reference: bool = False,
    ):
        self.names = select_metrics(metrics, with_reference=with_reference, with_prompt=with_prompt)
        self.metrics = {name: create_metric(name) for name in self.names}
        self.device = device
        self.flow_batch_size = flow_batch_size
        self.resize_reference = resize_reference
        needs_flow = any(m.info.needs_flow for m in self.metrics.values())
        self.flow_backend = (
            create_flow_backend(flow, device, flow_weights, allow_random_weights)
            if needs_flow
            else None
        )
        self.backbones = Backbones(
            device,
            allow_random_weights=allow_random_weights,
            clip_weights=clip_weights,
            clip_model=clip_model,
            lpips_net=lpips_net,
        )
        self.unavailable: dict[str, str] = {}
        for name, metric in self.metrics.items():
            backbone = metric.info.backbone
            if backbone is None:
                continue
            try:
                self.backbones.get(backbone)
            except WeightsNotFoundError as err:
                self.unavailable[name] = str(err)
        self.provenance = {
            "flow_backend": self.flow_backend.name if self.flow_backend else "none",
            "flow_weights": self.flow_backend.weights if self.flow_backend else "none",
            **{f"{k}_weights": v for k, v in self.backbones.labels.items()},
            "device": device,
            **{f"version_{k}": v for k, v in _versions().items()},
        }

    def __call__(
        self,
        video: Video | np.ndarray | str,
        *,
        condition: np.ndarray | None = None,
        reference: Video | None = None,
        prompt: str | None = None,
        missing: Mapping[str, MetricInputError] | None = None,
    ) -> VideoEvaluation:
        """Score one video. ``condition`` (uint8 [H, W, 3]) defaults to its first frame.
        ``missing`` ({"condition" or "reference": why}) names inputs the caller could not
        supply: every metric that needs one is NaN with that error, the others are scored."""
        if isinstance(video, str):
            video = read_video(video)
        elif not isinstance(video, Video):
            video = as_video(video)
        result = VideoEvaluation(
            video.source,
            video.num_frames,
            video.height,
            video.width,
            video.fps,
            notes=video.notes,
            provenance=dict(self.provenance),
        )
        missing = dict(missing or {})
        condition, reference, problem = self._prepare(
            video, condition, reference, result, with_condition="condition" not in missing
        )
        if problem:
            missing.setdefault("reference", problem)
        too_short = self._too_short(video)
        ctx = VideoContext(
            video,
            self.device,
            self.flow_backend,
            self.flow_batch_size,
            backbones=self.backbones,
            condition=condition,
            reference=reference,
            prompt=prompt,
        )
        for name, metric in self.metrics.items():
            if name in self.unavailable:
                result.scalars[name] = math.nan
                result.unavailable[name] = self.unavailable[name]
                continue
            try:
                for needed, error in missing.items():
                    if getattr(metric.info, f"needs_{needed}"):
                        raise error
                if name in too_short:
                    raise too_short[name]
                score = metric.score(ctx)
            except MetricInputError as err:
                result.scalars[name] = math.nan
                result.errors[name] = str(err)
                continue
            if metric.info.set_level:
                continue
            metric.values.append(score.value)
            result.scalars[name] = score.value
            if score.series is not None:
                result.series[name] = score.series
        return result

    def compute_set(self) -> dict[str, float]:
        """Set-level results (FVD) over every video seen so far."""
        results: dict[str, float] = {}
        for name, metric in self.metrics.items():
            if metric.info.set_level and name not in self.unavailable:
                results.update(metric.compute_set())
        return results

    def _too_short(self, video: Video) -> dict[str, MetricInputError]:
        """One error, shared by every metric that needs more frames than ``video`` has, so a
        short video is one line, not one per metric."""
        frames = video.num_frames
        needs: dict[int, list[str]] = {}
        for name, metric in self.metrics.items():
            if name not in self.unavailable and frames < metric.info.min_frames:
                needs.setdefault(metric.info.min_frames, []).append(name)
        if not needs:
            return {}
        groups = "; ".join(
            f"{', '.join(names)} need{'s' if len(names) == 1 else ''} {count}+"
            for count, names in sorted(needs.items())
        )
        error = MetricInputError(
            video.source,
            f"{frames} frame{'' if frames == 1 else 's'}, too few for some metrics ({groups})",
            "pass a longer video or leave these metrics out with --metrics",
        )
        return {name: error for names in needs.values() for name in names}

    def _prepare(self, video: Video, condition, reference, result, with_condition=True):
        """Fit condition and reference to the video's frame size (or say why not); the first
        frame stands in for a condition not given, unless ``with_condition`` is False."""
        size = (video.height, video.width)
        if condition is not None:  # the same rules as a video: uint8 or float in [0, 1], grey ok
            condition = as_image(condition)
        if condition is None and video.num_frames and with_condition:
            condition = video.frames[0]
        elif condition is not None and condition.shape[:2] != size:
            condition = resize_frames(condition[None], size)[0]
            result.notes += (f"condition resized to {size[1]}x{size[0]}",)
        problem = None
        if reference is not None:
            ref_size = (reference.height, reference.width)
            if ref_size != size and self.resize_reference:
                reference = Video(
                    resize_frames(reference.frames, size),
                    reference.fps,
                    reference.source,
                    reference.notes,
                )
                result.notes += (f"reference resized from {ref_size[1]}x{ref_size[0]}",)
            elif ref_size != size:
                problem = MetricInputError(
                    reference.source,
                    f"reference frames are {ref_size[1]}x{ref_size[0]}, video {video.source} "
                    f"is {size[1]}x{size[0]}",
                    "pass --resize-reference to resize the reference",
                )
                reference = None
            rates = (reference.fps, video.fps) if reference is not None else (None, None)
            if all(rates) and abs(rates[0] - rates[1]) > 1e-3 * rates[1]:
                result.notes += (
                    f"reference is {rates[0]:g} fps, the video {rates[1]:g} fps: "
                    "compared frame by frame",
                )
            if reference is not None and reference.num_frames != video.num_frames:
                count = min(reference.num_frames, video.num_frames)
                result.notes += (
                    f"reference has {reference.num_frames} frames, compared over the first {count}",
                )
        return condition, reference, problem


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, *size, 3], bicubic with antialiasing."""
    tensor = torch.as_tensor(np.array(frames)).permute(0, 3, 1, 2).float()  # read-only ok
    tensor = F.interpolate(tensor, size=size, mode="bicubic", align_corners=False, antialias=True)
    return tensor.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def evaluate(
    video: Video | np.ndarray | str,
    metrics: Sequence[str] | None = None,
    *,
    condition: np.ndarray | None = None,
    reference: Video | None = None,
    prompt: str | None = None,
    **options,
) -> VideoEvaluation:
    """Evaluate one video (path, Video or uint8 [T, H, W, 3] array) with the given metrics."""
    evaluator = Evaluator(
        metrics, with_reference=reference is not None, with_prompt=prompt is not None, **options
    )
    return evaluator(video, condition=condition, reference=reference, prompt=prompt)
