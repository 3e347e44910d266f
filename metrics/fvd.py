"""Fréchet Video Distance as a set-level metric: I3D features of generated and reference clips
accumulate video by video; ``compute`` compares the sets, over the whole length and per window.

Protocol (StyleGAN-V): 16-frame clips, frames resized to 224x224, I3D Kinetics-400 logits as
features, Fréchet distance of Gaussians fitted to both sets. For long videos the clips are
spread over the whole length; ``fvd_early`` / ``fvd_late`` score the generated clips of the
first / second half of each video against all reference clips (a clip centred on the middle
in neither), so late-frame degradation shows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from metrics.base import Metric, MetricInfo, MetricResult, VideoContext, register
from metrics.functional.fvd import feature_stats, frechet_distance, prepare_clip, sample_clip_starts

CLIP_LEN = 16
STABLE_CLIPS = 2048  # StyleGAN-V's sample count; fewer clips give a biased, noisy FVD


def clip_features(
    frames_uint8: np.ndarray, i3d, device, clip_len: int = CLIP_LEN, batch_size: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """I3D features of non-overlapping clips spread over the video, and each clip's centre as a
    fraction of the video length. Returns (features [N, 400], centres [N])."""
    count = len(frames_uint8)
    starts = sample_clip_starts(count, clip_len, max(1, count // clip_len))
    frames = torch.from_numpy(np.ascontiguousarray(frames_uint8))
    clips = [prepare_clip(frames[s : s + clip_len]) for s in starts]
    features = []
    with torch.inference_mode():
        for i in range(0, len(clips), batch_size):
            batch = torch.stack(clips[i : i + batch_size]).to(device)
            features.append(i3d(batch).float().cpu())
    centres = (np.asarray(starts) + clip_len / 2) / count
    return torch.cat(features).double().numpy(), centres


@register
class Fvd(Metric):
    """Set-level: ``update`` stores each video's clip features, ``compute_set`` the distances."""

    info = MetricInfo(
        name="fvd",
        family="quality",
        higher_is_better=False,
        value_range=(0.0, float("inf")),
        unit="Fréchet distance of I3D logits (StyleGAN-V protocol)",
        min_frames=CLIP_LEN,
        needs_reference=True,
        backbone="i3d",
        set_level=True,
        description="FVD of the generated set against the reference set, plus early/late halves",
    )

    def __init__(self, **options):
        super().__init__(**options)
        self.generated: list[tuple[np.ndarray, np.ndarray]] = []
        self.reference: list[np.ndarray] = []

    def _score(self, ctx: VideoContext) -> MetricResult:
        i3d = ctx.backbones.get("i3d")
        if ctx.reference.num_frames < CLIP_LEN:
            from metrics.errors import MetricInputError

            raise MetricInputError(
                ctx.reference.source,
                f"fvd needs reference videos of at "
                f"least {CLIP_LEN} frames, got {ctx.reference.num_frames}",
            )
        self.generated.append(clip_features(ctx.video.frames, i3d.model, ctx.device))
        self.reference.append(clip_features(ctx.reference.frames, i3d.model, ctx.device)[0])
        return MetricResult(math.nan)  # no per-video value: FVD is a property of the set

    def compute_set(self) -> dict[str, float]:
        """``fvd``, ``fvd_early``, ``fvd_late`` and the clip counts; warns when unstable."""
        if not self.generated:
            return {}
        features = np.concatenate([f for f, _ in self.generated])
        centres = np.concatenate([c for _, c in self.generated])
        reference = np.concatenate(self.reference)
        smallest = min(len(features), len(reference))
        counts = {"fvd_clips": float(len(features)), "fvd_reference_clips": float(len(reference))}
        if smallest < 2:  # a Gaussian needs two samples
            warnings.warn(
                f"FVD needs at least 2 clips on each side, got {len(features)} generated and "
                f"{len(reference)} reference; score more (or longer) videos",
                stacklevel=2,
            )
            nan = {"fvd": math.nan, "fvd_early": math.nan, "fvd_late": math.nan}
            return {**nan, **counts}
        if smallest < STABLE_CLIPS:
            warnings.warn(
                f"FVD from {smallest} clips is unstable (StyleGAN-V uses "
                f"{STABLE_CLIPS}); compare it only between runs of the same size",
                stacklevel=2,
            )
        ref_stats = feature_stats(reference)
        result = {"fvd": frechet_distance(*feature_stats(features), *ref_stats), **counts}
        # a clip centred on the middle belongs to neither half, so the halves stay equal in size
        for name, keep in (("fvd_early", centres < 0.5), ("fvd_late", centres > 0.5)):
            result[name] = (
                frechet_distance(*feature_stats(features[keep]), *ref_stats)
                if keep.sum() > 1
                else math.nan
            )
        return result

    def reset(self) -> None:
        super().reset()
        self.generated, self.reference = [], []
