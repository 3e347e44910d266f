"""Training clips from a folder of videos, checked up front: bad or too-short files are skipped
and reported, never fatal; a folder with nothing usable is a one-line error before any compute."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metrics.errors import BenchError
from metrics.video_io import find_videos, read_video

VAE_FACTOR = 8  # SVD's VAE downsamples by 8: training sizes must be multiples of it


def check_size(size: int) -> None:
    if size <= 0 or size % VAE_FACTOR:
        raise BenchError(
            f"size {size}",
            f"not a positive multiple of the VAE factor {VAE_FACTOR}",
            f"use e.g. {max(VAE_FACTOR, size // VAE_FACTOR * VAE_FACTOR)}",
        )


@dataclass
class VideoFolderClips:
    """Random clips of ``frames`` frames, centre-cropped and resized to ``size``, from a folder.

    Call with (step, generator) for a uint8 batch [B, T, size, size, 3]; the choice of video and
    start frame comes from the generator alone, so every arm of a run sees the same clips.
    """

    folder: Path
    frames: int
    size: int
    batch_size: int = 1
    skipped: dict[str, str] = field(default_factory=dict)
    _videos: list[np.ndarray] = field(default_factory=list, repr=False)

    def __post_init__(self):
        check_size(self.size)
        for path in find_videos(self.folder):
            try:
                video = read_video(path)
            except BenchError as err:
                self.skipped[str(path)] = err.problem
                continue
            if video.num_frames < self.frames:
                self.skipped[str(path)] = f"{video.num_frames} frames, shorter than {self.frames}"
                continue
            self._videos.append(video.frames)
        if not self._videos:
            raise BenchError(
                self.folder,
                f"no usable training video (each needs >= "
                f"{self.frames} frames; skipped {len(self.skipped)})",
                "add longer videos or lower the clip length",
            )

    def __call__(self, step: int, generator: torch.Generator) -> np.ndarray:
        clips = []
        for _ in range(self.batch_size):
            video = self._videos[int(torch.randint(len(self._videos), (1,), generator=generator))]
            start = int(torch.randint(len(video) - self.frames + 1, (1,), generator=generator))
            clips.append(_square(video[start : start + self.frames], self.size))
        return np.stack(clips)


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (antialiased bilinear) to size x size."""
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + side, left : left + side]))
    resized = F.interpolate(
        crop.permute(0, 3, 1, 2).float(),
        size=(size, size),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
