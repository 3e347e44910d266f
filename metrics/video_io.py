"""Reading and writing videos as uint8 [T, H, W, 3] RGB arrays.

Metrics read, never guess: every input is either converted by a documented, lossless-in-meaning
rule (recorded in ``Video.notes``) or rejected with a one-line ``VideoInputError`` that names the
file and the fix. Inputs: video files (decoded with PyAV), folders of numbered png/jpg frames
(natural order), ``.npy``/``.npz`` arrays and in-memory numpy arrays.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from PIL import Image, ImageOps

from metrics.atomic import atomic_path
from metrics.errors import VideoInputError

VIDEO_SUFFIXES = (
    ".mp4", ".webm", ".avi", ".mkv", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
SIDECAR_SUFFIXES = (  # text beside videos (notes, tables, the script that made them): no note
    ".txt", ".json", ".csv", ".md", ".parquet", ".log", ".py", ".sh", ".toml", ".yaml", ".yml"
)

_SUPPORTED = ", ".join(VIDEO_SUFFIXES + ARRAY_SUFFIXES + IMAGE_SUFFIXES)
_EXPECTED = "expected uint8 [T, H, W, 3] (or float in [0, 1])"
_WRITABLE = (".mp4", ".gif")
# Containers whose header states a duration (MPEG-PS/TS durations are only estimates).
_DECLARING = ("matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", "flv", "asf")
_AV_FIX = "check that the file is a complete, valid video (re-export or re-download it)"
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class Video:
    """Decoded RGB frames plus what the source said about them.

    ``frames`` is uint8 [T, H, W, 3], C-contiguous; ``fps`` is None when the source does not say;
    ``notes`` lists conversions made while reading (e.g. "grey converted to RGB").
    """

    frames: np.ndarray
    fps: float | None
    source: str
    notes: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


# ----------------------------------------------------------------------------- reading


def read_video(path: str | os.PathLike) -> Video:
    """Read a video file, a folder of numbered frames, a single image or a .npy/.npz array.

    Raises ``VideoInputError`` (one line, naming ``path``) for anything that cannot be read as
    uint8 [T, H, W, 3] without guessing.
    """
    source = os.fspath(path)
    p = Path(source)
    if not p.exists():
        raise VideoInputError(source, "no such file or folder", "check the path")
    if p.is_dir():
        return _read_frame_folder(p, source)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return _read_av(p, source)
    if suffix in ARRAY_SUFFIXES:
        return _read_array_file(p, source)
    if suffix in IMAGE_SUFFIXES:
        frame, notes = _read_image(p, source)
        return Video(frame[None], None, source, (*notes, "single image read as one frame"))
    raise _unsupported(source, p.suffix)


def as_image(array, source: str = "condition image") -> np.ndarray:
    """One image [H, W, 3] uint8 by the rules of ``as_video`` (uint8, or float in [0, 1]; grey
    or opaque alpha converted)."""
    return as_video(np.asarray(array)[None], source).frames[0]


def as_video(array, source: str = "<array>", fps: float | None = None) -> Video:
    """Validate and convert an in-memory array to a ``Video`` (same rules as ``.npy`` files).

    Accepts [T, H, W, 3] RGB, [T, H, W] or [T, H, W, 1] grey, [T, H, W, 4] with fully opaque
    alpha; uint8 as is, floats in [0, 1] (scaled by 255 and rounded), other integers in [0, 255].
    A uint8 C-contiguous RGB input is used without copying.
    """
    source = str(source)
    try:
        arr = np.asarray(array)
    except (ValueError, TypeError) as err:
        raise VideoInputError(source, f"not an array ({_one_line(err)})", _EXPECTED) from None
    notes: list[str] = []
    kind = arr.dtype.kind
    if kind not in "uif":
        raise VideoInputError(
            source, f"unsupported dtype {arr.dtype}", "pass uint8 in [0, 255] or float in [0, 1]"
        )
    arr = _check_shape(arr, source)
    alpha_opaque: float = 255
    if kind == "f":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise VideoInputError(
                source, f"{bad} non-finite values (NaN or inf) in float frames",
                "replace them before evaluating",
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise VideoInputError(
                source, f"float values span [{lo:.4g}, {hi:.4g}], outside [0, 1]",
                "scale to [0, 1] or pass uint8",
            )
        alpha_opaque = 1.0
    elif arr.dtype != np.uint8:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise VideoInputError(
                source, f"{arr.dtype} values span [{lo}, {hi}], outside [0, 255]",
                "pass uint8 in [0, 255] or float in [0, 1]",
            )
    channels = arr.shape[-1]
    if channels == 4:
        _check_opaque(arr[..., 3], alpha_opaque, source)
        arr = arr[..., :3]
        notes.append("opaque alpha dropped")
    if kind == "f":
        note = f"{arr.dtype} in [0, 1] converted to uint8"
        work = np.result_type(arr.dtype, np.float32)
        arr = np.rint(arr.astype(work) * 255).astype(np.uint8)
        notes.append(note)
    elif arr.dtype != np.uint8:
        notes.append(f"{arr.dtype} converted to uint8")
        arr = arr.astype(np.uint8)
    if channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
        notes.append("grey converted to RGB")
    return Video(np.ascontiguousarray(arr), _check_fps(fps, source), source, tuple(notes))


def _check_shape(arr: np.ndarray, source: str) -> np.ndarray:
    """Return ``arr`` as [T, H, W, C] with C in (1, 3, 4), or raise naming the shape."""
    shape = tuple(arr.shape)
    if arr.ndim == 3:
        if shape[-1] in (3, 4) and shape[-2] > 4:
            raise VideoInputError(
                source, f"shape {list(shape)} looks like one [H, W, C] image",
                "add a leading frame axis (array[None]) for a one-frame video",
            )
        arr = arr[..., None]
    elif arr.ndim == 4 and shape[-1] not in (1, 3, 4):
        if shape[1] in (1, 3, 4):
            raise VideoInputError(
                source, f"shape {list(shape)} looks channel-first [T, C, H, W]",
                "transpose to [T, H, W, C] with array.transpose(0, 2, 3, 1)",
            )
        arr = None
    elif arr.ndim != 4:
        arr = None
    if arr is None:
        raise VideoInputError(source, f"unsupported shape {list(shape)}", _EXPECTED)
    if arr.shape[0] == 0:
        raise VideoInputError(source, f"zero frames (shape {list(shape)})", _EXPECTED)
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise VideoInputError(source, f"zero height or width (shape {list(shape)})", _EXPECTED)
    return arr


def _check_opaque(alpha: np.ndarray, opaque: float, subject: str, where: str = "") -> None:
    see_through = alpha.size - int(np.count_nonzero(alpha == opaque))
    if see_through:
        raise VideoInputError(
            subject, f"{where}has transparency ({see_through} pixels with alpha < {opaque:g})",
            "flatten onto a background first",
        )


def _check_fps(fps, source: str) -> float | None:
    if fps is None:
        return None
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise VideoInputError(source, f"invalid fps {fps!r}", "pass a positive number or None")
    return value


def _read_array_file(p: Path, source: str) -> Video:
    fps = None
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            array = loaded
        else:
            with loaded:
                array, fps = _pick_npz(loaded, source)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise VideoInputError(
            source, f"cannot load {p.suffix.lower()} ({_one_line(err)})",
            "save it with numpy.save / numpy.savez as a plain numeric array",
        ) from None
    return as_video(array, source, fps)


def _pick_npz(data, source: str) -> tuple[np.ndarray, float | None]:
    """The frames array of an .npz archive (and its "fps" entry when there is one)."""
    keys = list(data.files)
    fps = None
    frame_keys = [k for k in keys if k != "fps"]
    if "fps" in keys and len(frame_keys) >= 1:
        raw = data["fps"]
        if raw.size != 1:
            raise VideoInputError(source, f"'fps' entry has shape {list(raw.shape)}",
                                  "store fps as a single number")
        fps = _check_fps(raw.reshape(()).item(), source)
    if len(frame_keys) == 1:
        return data[frame_keys[0]], fps
    named = [k for k in ("video", "frames") if k in frame_keys]
    if len(named) == 1:
        return data[named[0]], fps
    listed = ", ".join(repr(k) for k in keys) or "none"
    raise VideoInputError(
        source, f"cannot tell which array holds the frames (keys: {listed})",
        "store a single array, or name it 'video' or 'frames'",
    )


def _read_av(p: Path, source: str) -> Video:
    """Decode every frame of the first video stream to RGB with PyAV; a damaged, truncated or
    see-through file is an error."""
    try:
        container = av.open(str(p))
    except (av.FFmpegError, OSError) as err:
        reason = f"cannot open as video ({_av_reason(err)})"
        raise VideoInputError(source, reason, _AV_FIX) from None
    with container:
        stream = _video_stream(container, source)
        with _libav_errors() as logs:
            decoded = _decode(container, stream, source)
        _check_complete(container, stream, decoded, source)
        if logs:
            _, name, message = logs[0]
            raise VideoInputError(
                source, f"FFmpeg reported damage while decoding ({name}: {_one_line(message)})",
                "re-encode or replace the file",
            )
        fps = _fps(stream, decoded)
        tick = float(stream.time_base) if stream.time_base else 0.0
    if not decoded.frames:
        raise VideoInputError(source, "zero frames decoded", _AV_FIX)
    notes = [f"rotated {-angle % 360} degrees clockwise, as its display matrix asks"
             for angle in sorted(decoded.angles) if angle]
    return Video(np.ascontiguousarray(np.stack(decoded.frames)), fps, source,
                 (*notes, *_timing_notes(decoded, tick)))


@dataclass
class _Decoded:
    """What decoding gave: upright RGB frames, each frame's (start, duration) in seconds (start
    None when the frame has no timestamp), the non-empty packets read and the rotations met."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[tuple[float | None, float]] = field(default_factory=list)
    packets: int = 0
    angles: set[int] = field(default_factory=set)

    def gaps(self) -> list[float]:
        """Seconds from each frame to the next, then the last frame's duration when known."""
        starts = [start for start, _ in self.times]
        if not starts or None in starts:
            return []
        last = self.times[-1][1]
        return [b - a for a, b in itertools.pairwise(starts)] + ([last] if last > 0 else [])


def _video_stream(container, source: str):
    """The first video stream, refused when it cannot be decoded as it is."""
    if not container.streams.video:
        raise VideoInputError(source, "has no video stream", _AV_FIX)
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a file cut before the codec's parameters
        raise VideoInputError(source, "its video stream has no codec parameters", _AV_FIX)
    if stream.metadata.get("alpha_mode") == "1":  # WebM: FFmpeg's vp9 decoder drops the alpha
        raise VideoInputError(
            source, "has transparency (a WebM alpha channel, alpha_mode 1, that FFmpeg's decoder "
            "does not read)", "flatten onto a background first",
        )
    return stream


@contextmanager
def _libav_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Collect libav's error-level log lines (level, name, message) from every thread; PyAV
    drops them unless logging is on. The previous logging settings are restored afterwards."""
    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # else a line the previous file logged is not repeated
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)


def _decode(container, stream, source: str) -> _Decoded:
    """Every frame of ``stream``, in one size. Default (slice) threading: frame threading
    ("AUTO") hides errors of truncated files."""
    out = _Decoded()
    try:
        for packet in container.demux(stream):
            out.packets += 1 if packet.size else 0
            for frame in packet.decode():
                rgb = frame_rgb(frame, len(out.frames), source)
                if out.frames and rgb.shape != out.frames[0].shape:
                    h0, w0 = out.frames[0].shape[:2]
                    raise VideoInputError(
                        source, f"frame {len(out.frames)} is {rgb.shape[1]}x{rgb.shape[0]} "
                        f"(WxH) but frame 0 is {w0}x{h0}", "re-encode it at one frame size",
                    )
                out.frames.append(rgb)
                out.angles.add(frame.rotation)
                duration = frame.duration * frame.time_base if frame.time_base else 0
                out.times.append((frame.time, float(duration or 0)))
    except (av.FFmpegError, OSError) as err:
        raise VideoInputError(
            source, f"decoding failed after {len(out.frames)} frames ({_av_reason(err)})", _AV_FIX
        ) from None
    return out


def frame_rgb(frame, index: int, source: str) -> np.ndarray:
    """A decoded frame as upright RGB; a frame with alpha (or a palette) must be opaque."""
    fmt = frame.format
    if fmt.has_palette or any(c.is_alpha for c in fmt.components):
        rgba = frame.to_ndarray(format="rgba")
        _check_opaque(rgba[..., 3], 255, source, f"frame {index} ")
        rgb = rgba[..., :3]
    else:
        rgb = frame.to_ndarray(format="rgb24")
    return _upright(rgb, frame.rotation, source)  # counter-clockwise degrees, in [-180, 180]


def _check_complete(container, stream, decoded: _Decoded, source: str) -> None:
    """Refuse a file that holds fewer frames than its header lists, a GIF without its trailer
    and (with no frame count) one whose frames end before the duration its header declares."""
    if stream.frames and decoded.packets < stream.frames:
        raise VideoInputError(
            source, f"truncated: the container lists {stream.frames} frames but holds "
            f"only {decoded.packets}", _AV_FIX,
        )
    if container.format.name == "gif" and not _has_gif_trailer(Path(source)):
        raise VideoInputError(source, "lacks the GIF trailer byte (0x3B) at its end: the file "
                              "is truncated", _AV_FIX)
    gaps = decoded.gaps()
    if stream.frames or not gaps or container.format.name not in _DECLARING:
        return
    declared = _declared_seconds(container, stream)
    first, _ = decoded.times[0]
    last, duration = decoded.times[-1]
    reach = last + duration - min(first, 0.0)  # FLV counts a start delay, fragmented mp4 not
    if declared is not None and reach < declared - 1.5 * float(np.median(gaps)):
        raise VideoInputError(
            source, f"ends after {reach:.3g} s of the {declared:.3g} s its header declares: the "
            "file is truncated", _AV_FIX,
        )


def _has_gif_trailer(p: Path) -> bool:
    """Whether the file ends with the GIF trailer byte, as every complete GIF does."""
    with p.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if not f.tell():
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b";"


def _declared_seconds(container, stream) -> float | None:
    """The video stream's duration as the file declares it: the stream's own, Matroska's
    per-stream DURATION tag, or the container's when the video is its only stream."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", stream.metadata.get("DURATION", ""))
    if tag:
        hours, minutes, seconds = tag.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if len(container.streams) == 1 and container.duration:
        return container.duration / av.time_base
    return None


def _fps(stream, decoded: _Decoded) -> float | None:
    """The stream's average rate; a GIF's from its frames' delays (None if one has none)."""
    if stream.codec_context.name != "gif":
        return float(stream.average_rate) if stream.average_rate else None
    durations = [duration for _, duration in decoded.times]
    return len(durations) / sum(durations) if durations and min(durations) > 0 else None


def _timing_notes(decoded: _Decoded, tick: float) -> tuple[str, ...]:
    """A note when frame durations differ by over 10% (and over the time base's rounding)."""
    gaps = decoded.gaps()
    if not gaps or max(gaps) - min(gaps) <= 0.1 * min(gaps) + tick:
        return ()
    return (f"frame durations vary from {min(gaps) * 1000:.0f} to {max(gaps) * 1000:.0f} ms; "
            "scored per frame as if evenly spaced",)


def _upright(rgb: np.ndarray, angle: int, source: str) -> np.ndarray:
    """A frame turned by its display matrix's counter-clockwise ``angle``, as players and
    ffmpeg turn it (a phone's portrait video is stored sideways with a matrix that turns it
    upright)."""
    if angle % 90:
        raise VideoInputError(source, f"its display matrix turns it by {angle} degrees, not by "
                              "quarter turns", "re-encode it upright")
    return np.rot90(rgb, angle // 90) if angle else rgb


def _av_reason(err: BaseException) -> str:
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return _one_line(reason)


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------- frame folders


def _visible(entries: Iterable[Path]) -> list[Path]:
    return [e for e in entries if not e.name.startswith(".")]


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        e for e in _visible(folder.iterdir())
        if e.suffix.lower() in IMAGE_SUFFIXES and e.is_file()
    )


def _read_frame_folder(folder: Path, source: str) -> Video:
    """Read numbered png/jpg frames in the order of the (last) integer in their names."""
    files = _image_files(folder)
    if not files:
        raise VideoInputError(
            source, "folder holds no png/jpg frames",
            "put numbered frames (frame_0001.png, ...) in it, or pass the video files",
        )
    numbered: dict[int, Path] = {}
    for f in files:
        digits = re.findall(r"\d+", f.stem)
        if not digits:
            raise VideoInputError(
                source, f"frame file {f.name!r} has no number in its name",
                "name frames with their index (frame_0001.png, ...) or move other images out",
            )
        index = int(digits[-1])
        if index in numbered:
            raise VideoInputError(
                source, f"{numbered[index].name!r} and {f.name!r} have the same frame number",
                "keep one file per frame number",
            )
        numbered[index] = f
    ordered = [numbered[i] for i in sorted(numbered)]
    first, notes = _read_image(ordered[0], source)
    frames = np.empty((len(ordered), *first.shape), dtype=np.uint8)
    frames[0] = first
    all_notes = dict.fromkeys(notes)
    for i, f in enumerate(ordered[1:], start=1):
        frame, notes = _read_image(f, source)
        if frame.shape != first.shape:
            raise VideoInputError(
                source, f"{f.name} is {frame.shape[1]}x{frame.shape[0]} (WxH) but "
                f"{ordered[0].name} is {first.shape[1]}x{first.shape[0]}",
                "resize all frames to one size",
            )
        frames[i] = frame
        all_notes.update(dict.fromkeys(notes))
    return Video(frames, None, source, (*all_notes, *_numbering_notes(sorted(numbered))))


def _numbering_notes(numbers: list[int]) -> tuple[str, ...]:
    """A note when frame numbers are unevenly spaced (frames missing?); an even step, as an
    export of every other frame, is no gap."""
    pairs = list(itertools.pairwise(numbers))
    step = min((b - a for a, b in pairs), default=1)
    jumps = [(a, b) for a, b in pairs if b - a != step]
    if not jumps:
        return ()
    (a, b), more = jumps[0], ", and more" if len(jumps) > 1 else ""
    return (f"frame numbers are unevenly spaced ({a} is followed by {b}{more}): frames missing? "
            "scored as consecutive",)


def _read_image(f: Path, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """One image as uint8 [H, W, 3] plus notes; grey, palette and opaque alpha are converted."""
    where = "" if Path(source) == f else f"{f.name} "
    try:
        with Image.open(f) as img:
            img.load()
            notes: list[str] = []
            if img.getexif().get(ORIENTATION, 1) != 1:  # a camera's: shown turned or mirrored
                img = ImageOps.exif_transpose(img)
                notes.append("turned upright as its EXIF orientation asks")
            mode = img.mode
            if mode in ("P", "PA"):
                has_alpha = mode == "PA" or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "RGB")
                notes.append("palette converted to RGB")
            elif mode in ("1", "L", "LA"):
                img = img.convert("RGBA" if mode == "LA" else "RGB")
                notes.append("grey converted to RGB")
            elif mode not in ("RGB", "RGBA"):
                raise VideoInputError(
                    source, f"{where}has unsupported image mode {mode}",
                    "save frames as 8-bit RGB, RGBA or grey png/jpg",
                )
            arr = np.asarray(img)
    except VideoInputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise VideoInputError(
            source, f"cannot read image {f.name} ({_one_line(err)})",
            "check that the image is complete and valid",
        ) from None
    if arr.shape[-1] == 4:
        _check_opaque(arr[..., 3], 255, source, where)
        arr = arr[..., :3]
        notes.append("opaque alpha dropped")
    return np.ascontiguousarray(arr), tuple(notes)


# ----------------------------------------------------------------------------- finding


def find_videos(path: str | os.PathLike) -> list[Path]:
    """Expand a path into the videos it holds.

    A file is itself (if its suffix is supported); a folder of images with no video/array files
    is one frame-folder video; any other folder yields its video/array files (natural name
    order) followed by its subfolders that hold images (each one frame-folder video). The files
    of a folder it leaves out are ``skipped_files``.
    """
    source = os.fspath(path)
    p = Path(source)
    if not p.exists():
        raise VideoInputError(source, "no such file or folder", "check the path")
    if not p.is_dir():
        if p.suffix.lower() not in VIDEO_SUFFIXES + ARRAY_SUFFIXES + IMAGE_SUFFIXES:
            raise _unsupported(source, p.suffix)
        if not p.is_file():  # reading a pipe would wait for a writer forever
            raise VideoInputError(source, "is not a regular file (a pipe or a device)",
                                  "save the video to a file and give that")
        return [p]
    entries = sorted(_visible(p.iterdir()), key=_natural_key)
    media = [
        e for e in entries
        if e.is_file() and e.suffix.lower() in VIDEO_SUFFIXES + ARRAY_SUFFIXES
    ]
    if not media and _image_files(p):
        return [p]
    folders = [e for e in entries if e.is_dir() and _image_files(e)]
    found = media + folders
    if not found:
        nested = nested_video_folders(p)
        raise VideoInputError(
            source, "no videos found",
            f"its sub-folders {names_of(nested)} hold videos: give those (one folder level is "
            "read)" if nested else
            f"expected video files ({', '.join(VIDEO_SUFFIXES)}), arrays (.npy, .npz) or "
            "folders of numbered png/jpg frames",
        )
    return found


def skipped_files(path: str | os.PathLike) -> list[Path]:
    """The visible files in folder ``path`` that ``find_videos`` does not read, in natural name
    order (sidecar files such as .txt, .json or .csv aside); none when ``path`` is a file."""
    folder = Path(path)
    if not folder.is_dir():
        return []
    files = [e for e in sorted(_visible(folder.iterdir()), key=_natural_key) if e.is_file()]
    read = VIDEO_SUFFIXES + ARRAY_SUFFIXES
    if not any(f.suffix.lower() in read for f in files):  # a folder of frames, or of folders
        read = IMAGE_SUFFIXES
    return [f for f in files if f.suffix.lower() not in read + SIDECAR_SUFFIXES]


def skipped_note(path: str | os.PathLike) -> str:
    """A line naming the ``skipped_files`` of ``path``, or "" when there are none."""
    skipped = skipped_files(path)
    if not skipped:
        return ""
    what = ("files that are not videos or frame folders" if len(skipped) > 1 else
            "file that is not a video or frame folder")
    return f"skipped {len(skipped)} {what}: {names_of(skipped)}"


def nested_video_folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that hold video or array files: ``find_videos`` reads one
    level, where a sub-folder is a video only as a folder of frames."""
    media = VIDEO_SUFFIXES + ARRAY_SUFFIXES
    return [
        e for e in sorted(_visible(folder.iterdir()), key=_natural_key)
        if e.is_dir() and any(f.suffix.lower() in media and f.is_file()
                              for f in _visible(e.iterdir()))
    ]


def names_of(paths: list[Path], shown: int = 3) -> str:
    """The first ``shown`` names, and how many more, for a message."""
    names = ", ".join(p.name for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _natural_key(p: Path) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", p.name) if part]


def _unsupported(source: str, suffix: str) -> VideoInputError:
    what = f"'{suffix}'" if suffix else "(no suffix)"
    return VideoInputError(source, f"unsupported file type {what}", f"use one of {_SUPPORTED}")


# ----------------------------------------------------------------------------- writing


def write_video(path: str | os.PathLike, frames, fps: float = 8.0, *,
                lossless: bool = False) -> Path:
    """Write frames (validated with ``as_video``) to ``.mp4`` or ``.gif``; return the path.

    ``.mp4``: H.264 (libx264), yuv420p, crf 17, which needs even height and width; with
    ``lossless=True`` libx264rgb, rgb24, crf 0, an exact round trip. ``.gif``: each frame is
    quantised to its own 256-colour palette (lossy) with Pillow and muxed with PyAV, which keeps
    repeated frames (Pillow's GIF writer merges them); GIF delays are whole 1/100 s, so the
    read-back fps is only close to ``fps``; loops forever. ``lossless`` is ignored for GIF.
    The file is written to a temporary name in the same folder and moved into place.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _WRITABLE:
        raise VideoInputError(
            str(path), f"cannot write {suffix or 'files without a suffix'}", "use .mp4 or .gif"
        )
    rate = Fraction(_check_fps(fps, str(path))).limit_denominator(10_000)
    if rate <= 0:
        raise VideoInputError(str(path), f"invalid fps {fps!r}", "pass a positive number")
    video = as_video(frames, str(path))
    if suffix == ".mp4" and not lossless and (video.height % 2 or video.width % 2):
        raise VideoInputError(
            str(path), f"yuv420p needs even sizes, got {video.width}x{video.height} (WxH)",
            "crop or pad to even height and width, or pass lossless=True",
        )
    try:
        with atomic_path(target) as tmp:
            if suffix == ".mp4":
                _write_mp4(tmp, video.frames, rate, lossless)
            else:
                _write_gif(tmp, video.frames, rate)
    except (av.FFmpegError, OSError) as err:
        raise VideoInputError(
            str(path), f"cannot write ({_av_reason(err)})", "check that the folder is writable"
        ) from None
    return target


def _write_mp4(path: Path, frames: np.ndarray, rate: Fraction, lossless: bool) -> None:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.options = {"crf": "0" if lossless else "17"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def _write_gif(path: Path, frames: np.ndarray, rate: Fraction) -> None:
    alpha = np.full((256, 1), 255, dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("gif", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "pal8"
        for frame in frames:
            quantised = Image.fromarray(frame).quantize(256)
            palette = np.zeros((256, 3), dtype=np.uint8)
            colours = np.asarray(quantised.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
            palette[: len(colours)] = colours[:256]
            argb = np.concatenate([alpha, palette], axis=1)  # PyAV wants ARGB palettes
            indices = np.ascontiguousarray(np.asarray(quantised, dtype=np.uint8))
            container.mux(stream.encode(av.VideoFrame.from_ndarray((indices, argb), format="pal8")))
        container.mux(stream.encode(None))
