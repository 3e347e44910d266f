"""Controlled, seeded distortions of uint8 [T, H, W, 3] videos, for checking metric responses.

Every function returns a new uint8 array and leaves its input untouched. Strength parameters are
nested: the random draws (``flicker``, ``jittered_trajectory``) and the frame positions
(``duplicate_frames``, ``drop_frames``) do not depend on the strength, so a larger strength is
strictly more of the same distortion. Temporal jitter needs re-rendering:
``make_video("pan", trajectory=jittered_trajectory(...))`` (see ``metrics.synthetic``).
"""

from __future__ import annotations

import numpy as np

from metrics.errors import VideoInputError
from metrics.synthetic import velocity

__all__ = [
    "blur",
    "brightness_shift",
    "content_drift",
    "drop_frames",
    "duplicate_frames",
    "flicker",
    "jittered_trajectory",
    "jpeg",
    "nested_positions",
    "noise",
]


def _video(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoInputError(
            "frames", f"expected uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    return frames


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 255.0)).astype(np.uint8)


def flicker(frames: np.ndarray, amount: float, seed: int = 0) -> np.ndarray:
    """Per-frame gain and offset noise: ``f_t * (1 + amount * g_t) + 255 * amount * o_t``.

    ``g_t``, ``o_t`` are standard normal draws fixed by ``seed`` (the same for every ``amount``,
    and the first T draws of a longer video); ``amount=0`` returns an exact copy.
    """
    frames = _video(frames)
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    z = np.random.default_rng(seed).standard_normal((len(frames), 2))
    gain = (1.0 + amount * z[:, 0])[:, None, None, None]
    offset = (255.0 * amount * z[:, 1])[:, None, None, None]
    return _to_uint8(frames.astype(np.float64) * gain + offset)


def brightness_shift(frames: np.ndarray, delta: float) -> np.ndarray:
    """Add the same ``delta`` (0-255 levels) to every pixel of every frame, clipped."""
    return _to_uint8(_video(frames).astype(np.float64) + delta)


def nested_positions(length: int, k: int) -> np.ndarray:
    """k interior indices (1..length-2), sorted, spread evenly and nested in k.

    Greedy farthest-point order starting from the ends 0 and length-1 (ties: lower index), so the
    positions for k are always a subset of those for k + 1.
    """
    n_interior = max(length - 2, 0)
    if not 0 <= k <= n_interior:
        raise ValueError(f"k must be in [0, {n_interior}] for {length} frames, got {k}")
    idx = np.arange(length)
    dist = np.minimum(idx, length - 1 - idx).astype(np.float64)
    chosen = []
    for _ in range(k):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.abs(idx - i))
    return np.sort(np.array(chosen, dtype=np.int64))


def duplicate_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Replace k evenly spaced interior frames by a copy of their predecessor (same length)."""
    out = _video(frames).copy()
    for i in nested_positions(len(out), k):
        out[i] = out[i - 1]
    return out


def drop_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Remove k evenly spaced interior frames (length T - k; first and last frames kept)."""
    frames = _video(frames)
    return np.delete(frames, nested_positions(len(frames), k), axis=0)


def jittered_trajectory(
    frames: int, speed: float, direction_deg: float, amount: float, seed: int = 0
) -> np.ndarray:
    """Per-frame pan offsets [frames, 2] for ``make_video(..., trajectory=...)``.

    Constant-velocity path ``t * velocity(speed, direction_deg)`` plus ``amount`` px times seeded
    standard normal offsets (the same draws for every amount); frame 0 stays at (0, 0).
    """
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    noise = np.random.default_rng(seed).standard_normal((frames, 2))
    noise[0] = 0.0
    line = np.arange(frames, dtype=np.float64)[:, None] * velocity(speed, direction_deg)
    return line + amount * noise


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every frame with standard deviation ``sigma`` px (0 = copy)."""
    import cv2

    frames = _video(frames)
    if sigma <= 0:
        return frames.copy()
    return np.stack(
        [cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for f in frames]
    )


def noise(frames: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of ``std`` levels; the same seeded draws for every ``std``."""
    frames = _video(frames)
    z = np.random.default_rng(seed).standard_normal(frames.shape)
    return _to_uint8(frames.astype(np.float64) + std * z)


def jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress every frame at ``quality`` (1-95, lower is worse; 100 = copy)."""
    import io

    from PIL import Image

    frames = _video(frames)
    if quality >= 100:
        return frames.copy()
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=int(quality))
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


def content_drift(frames: np.ndarray, other: np.ndarray, amount: float) -> np.ndarray:
    """Blend each frame towards ``other`` (same shape) with weight ``amount * t / (T-1)``.

    Frame 0 is untouched and the drift grows linearly over time: ``amount`` 1 ends on ``other``.
    """
    frames, other = _video(frames), _video(other)
    weight = amount * np.linspace(0.0, 1.0, len(frames))[:, None, None, None]
    return _to_uint8((1 - weight) * frames + weight * other)
