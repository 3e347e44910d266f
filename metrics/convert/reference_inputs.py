"""Deterministic test inputs for the converted backbones, shared with the reference scripts.

``reference_pairs`` (LPIPS image pairs) and ``reference_clips`` (I3D videos) are the one source of
truth for the inputs of ``tests/golden/make_{lpips,i3d}_reference.py`` and of the tests. This
module imports numpy and nothing else, so those scripts load it by file path in a jax-only
environment (no torch, no project package).
"""

from __future__ import annotations

import numpy as np


def _texture(rng: np.random.RandomState, size: int, dx: float = 0.0) -> np.ndarray:
    """Smooth colour image [size, size, 3] in [-0.9, 0.9]: per channel 10 seeded plane waves of
    1-8 cycles per image, amplitude ~ 1/frequency, sampled at x - dx (a sub-image shift)."""
    x = np.arange(size, dtype=np.float64)[None, :] - dx
    y = np.arange(size, dtype=np.float64)[:, None]
    image = np.empty((size, size, 3))
    for c in range(3):
        freq, angle = rng.uniform(1, 8, 10), rng.uniform(0, 2 * np.pi, 10)
        phase, amp = rng.uniform(0, 2 * np.pi, 10), 1 / freq
        fx, fy = freq * np.cos(angle), freq * np.sin(angle)
        arg = 2 * np.pi * (fx[:, None, None] * x + fy[:, None, None] * y) / size
        image[:, :, c] = 0.9 * (amp[:, None, None] * np.sin(arg + phase[:, None, None])).sum(0)
        image[:, :, c] /= amp.sum()
    return image


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (radius 3 sigma, reflect padding) of [H, W, C]."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(r, r) if a == axis else (0, 0) for a in range(3)]
        padded, n = np.pad(image, pad, mode="reflect"), image.shape[axis]
        image = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return image


REFERENCE_KINDS = ("noise_0.05", "noise_0.1", "noise_0.2", "blur_1.5", "shift_3px", "other")


def reference_pairs(seeds: tuple[int, ...] = (0, 1), size: int = 64
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Deterministic LPIPS test pairs: (img0, img1) [N, size, size, 3] float32 in [-1, 1], labels.

    Per seed, a smooth texture (``_texture`` from ``np.random.RandomState(seed)``, whose stream
    numpy keeps fixed) against: itself plus Gaussian noise of std 0.05, 0.1, 0.2 (one seeded noise
    field, scaled; clipped to [-1, 1]), a Gaussian blur of sigma 1.5 px, the same texture shifted
    3 px right, and an unrelated texture (seed + 1000): ``REFERENCE_KINDS``, in that order.
    """
    img0, img1, labels = [], [], []
    for seed in seeds:
        base = _texture(np.random.RandomState(seed), size)
        shifted = _texture(np.random.RandomState(seed), size, dx=3.0)
        noise = np.random.RandomState(seed + 500).normal(size=base.shape)
        others = [np.clip(base + s * noise, -1, 1) for s in (0.05, 0.1, 0.2)]
        others += [_blur(base, 1.5), shifted, _texture(np.random.RandomState(seed + 1000), size)]
        for kind, other in zip(REFERENCE_KINDS, others, strict=True):
            img0.append(base)
            img1.append(other)
            labels.append(f"seed{seed}/{kind}")
    return np.stack(img0).astype(np.float32), np.stack(img1).astype(np.float32), labels


def reference_clips(seeds: tuple[int, ...] = (0, 1), frames: int = 16,
                    size: int = 224) -> np.ndarray:
    """Deterministic test videos [len(seeds), frames, size, size, 3] float32 in [-1, 1].

    Each clip is a smooth colour texture (per channel, 12 plane waves of 1-6 cycles per image,
    amplitude ~ 1/frequency, from ``np.random.RandomState(seed)``, whose stream numpy keeps
    fixed) translating at 2-5 px per frame in a seeded direction, scaled into [-0.95, 0.95].
    """
    coords = np.arange(size, dtype=np.float64)
    clips = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        speed, heading = rng.uniform(2, 5), rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])  # px/frame (x, y)
        waves = []
        for _ in range(3):
            freq = rng.uniform(1, 6, 12)
            angle = rng.uniform(0, 2 * np.pi, 12)
            waves.append((freq * np.cos(angle), freq * np.sin(angle), rng.uniform(0, 2 * np.pi, 12),
                          1 / freq))
        video = np.empty((frames, size, size, 3), np.float64)
        for t in range(frames):
            x = coords[None, :] - velocity[0] * t
            y = coords[:, None] - velocity[1] * t
            for c, (fx, fy, phase, amp) in enumerate(waves):
                arg = 2 * np.pi * (fx[:, None, None] * x + fy[:, None, None] * y) / size
                field = (amp[:, None, None] * np.sin(arg + phase[:, None, None])).sum(0)
                video[t, :, :, c] = 0.95 * field / amp.sum()
        clips.append(video)
    return np.stack(clips).astype(np.float32)
