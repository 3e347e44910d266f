"""Training clips from a folder of videos, checked up front: bad or too-short files are skipped
and reported, never fatal; a folder with nothing usable is a one-line error before any compute.
A file damaged past what the check reads is skipped when a step fails to decode it.

Only each file's length is read up front (video containers are demuxed, not decoded), and kept
in an index file for the next scan (a launch's processes, a resumed run); a step decodes the
frames of its own clip, so memory does not grow with the data set."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from metrics.atomic import atomic_path
from metrics.errors import BenchError
from metrics.video_io import VIDEO_SUFFIXES, find_videos, frame_rgb, read_video, skipped_files

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
    ``index``: a JSON file of the files' lengths (``scan_lengths``).
    """

    folder: Path
    frames: int
    size: int
    batch_size: int = 1
    index: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    _videos: list[tuple[Path, int]] = field(default_factory=list, repr=False)

    def __post_init__(self):
        check_size(self.size)
        for path in skipped_files(self.folder):
            self.skipped[str(path)] = "not a video, array or frame folder"
        for path, length in scan_lengths(find_videos(self.folder), self.index).items():
            if isinstance(length, str):  # why it cannot be read
                self.skipped[str(path)] = length
                continue
            if length < self.frames:
                self.skipped[str(path)] = f"{length} frames, shorter than {self.frames}"
                continue
            self._videos.append((path, length))
        if not self._videos:
            raise BenchError(
                self.folder,
                f"no usable training video (each needs >= "
                f"{self.frames} frames; skipped {len(self.skipped)})",
                "add longer videos or lower the clip length",
            )

    def __call__(self, step: int, generator: torch.Generator) -> np.ndarray:
        clips = []
        while len(clips) < self.batch_size:
            path, length = self._videos[
                int(torch.randint(len(self._videos), (1,), generator=generator))
            ]
            start = int(torch.randint(length - self.frames + 1, (1,), generator=generator))
            try:
                clips.append(_square(read_clip(path, start, self.frames), self.size))
            except BenchError as err:  # damage past what the up-front check reads: draw again
                self._damaged(path, err)
        return np.stack(clips)

    def _damaged(self, path: Path, err: BenchError) -> None:
        """Skip a video that fails to decode (said once; drawn again, it fails again, so every
        run and resume draws the same clips); fatal only when none is left."""
        if str(path) not in self.skipped:
            self.skipped[str(path)] = err.problem
            print(f"warning: training video skipped: {err}", file=sys.stderr)
        if all(str(p) in self.skipped for p, _ in self._videos):
            raise BenchError(self.folder, "every usable training video failed to decode",
                             "check the videos (re-export them) and resume")


def scan_lengths(paths: list[Path], index: Path | None = None) -> dict[Path, int | str]:
    """Each video's frame count, or why it cannot be read. With ``index``, the lengths of files
    unchanged since the last scan (size and modification time) come from it, not from the files
    (demuxing every packet of a large data set takes minutes), and this scan is written back."""
    known = _read_index(index)
    entries = {}
    for path in paths:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = known.get(str(path))
        if entry is None or entry[0] != stamp:
            try:
                entry = [stamp, frame_count(path)]
            except BenchError as err:
                entry = [stamp, err.problem]
        entries[str(path)] = entry
    if index is not None and entries != known:
        with atomic_path(index) as tmp:
            tmp.write_text(json.dumps(entries))
    return {Path(name): entry[1] for name, entry in entries.items()}


def _read_index(index: Path | None) -> dict[str, list]:
    """An index ``scan_lengths`` wrote; missing or damaged, none (the scan rebuilds it)."""
    try:
        entries = json.loads(index.read_text()) if index is not None else {}
    except (OSError, ValueError):
        return {}
    valid = isinstance(entries, dict) and all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[1], int | str)
        for e in entries.values())
    return entries if valid else {}


def frame_count(path: Path) -> int:
    """Frames in a training video: a container's packets (demuxed, not decoded), else the frames
    of the array or frame folder. Unreadable files are a ``BenchError``."""
    if not _is_container(path):
        return read_video(path).num_frames
    fix = "check that the file is a complete, valid video (re-export or re-download it)"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BenchError(path, "has no video stream", fix)
            stream = container.streams.video[0]
            packets = sum(1 for packet in container.demux(stream) if packet.size)
            listed = stream.frames
    except (av.FFmpegError, OSError) as err:
        raise BenchError(path, f"cannot read as video ({err})", fix) from None
    if listed and packets < listed:
        raise BenchError(path, f"truncated: lists {listed} frames, holds {packets}", fix)
    return packets


def _is_container(path: Path) -> bool:
    """A video file PyAV demuxes (arrays and frame folders are read whole)."""
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def read_clip(path: Path, start: int, count: int) -> np.ndarray:
    """Frames ``start`` to ``start + count`` of a training video, uint8 [count, H, W, 3]; a
    container is decoded only up to the clip's end."""
    if not _is_container(path):
        frames = read_video(path).frames[start : start + count]
    else:
        kept = []
        try:
            with av.open(str(path)) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index >= start:  # upright and opaque, as read_video reads it
                        kept.append(frame_rgb(frame, index, str(path)))
                    if len(kept) == count:
                        break
        except (av.FFmpegError, OSError) as err:
            raise BenchError(path, f"decoding failed after {len(kept)} of the {count} frames "
                             f"from {start} ({err})", "re-export the video") from None
        if len({frame.shape for frame in kept}) > 1:
            raise BenchError(path, "changes frame size mid-video", "re-encode it at one size")
        frames = np.stack(kept) if kept else np.empty((0, 0, 0, 3), np.uint8)
    if len(frames) < count:
        raise BenchError(path, f"decoded {len(frames)} of the {count} frames from {start}",
                         "re-export the video")
    return frames


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
