"""Warping error and its masks against a plain-loop reference written from Lai et al. 2018."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.functional.flicker import warping_error


def bilinear(image: np.ndarray, x: float, y: float):
    """Sample image [H, W, C] at (x, y); None outside [0, W-1] x [0, H-1]."""
    height, width = image.shape[:2]
    if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
        return None
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    ax, ay = x - x0, y - y0
    top = (1 - ax) * image[y0, x0] + ax * image[y0, x1]
    bottom = (1 - ax) * image[y1, x0] + ax * image[y1, x1]
    return (1 - ay) * top + ay * bottom


def reference_warping_error(frames, forward, backward):
    """frames [T, H, W, 3] in [0, 1]; flows [T-1, H, W, 2] (x, y). Loops, no vectorisation."""
    errors = []
    for t in range(len(frames) - 1):
        f12, f21 = forward[t], backward[t]
        height, width = f12.shape[:2]
        total, count = 0.0, 0
        for y in range(height):
            for x in range(width):
                u, v = f12[y, x]
                back = bilinear(f21, x + u, y + v)
                target = bilinear(frames[t + 1], x + u, y + v)
                if back is None:
                    continue
                trip = (back[0] + u) ** 2 + (back[1] + v) ** 2
                occluded = trip > 0.01 * (back[0] ** 2 + back[1] ** 2 + u**2 + v**2) + 0.5
                dudx = f12[y, x + 1, 0] - u if x + 1 < width else 0.0
                dvdx = f12[y, x + 1, 1] - v if x + 1 < width else 0.0
                dudy = f12[y + 1, x, 0] - u if y + 1 < height else 0.0
                dvdy = f12[y + 1, x, 1] - v if y + 1 < height else 0.0
                boundary = dudx**2 + dudy**2 + dvdx**2 + dvdy**2 > 0.01 * (u**2 + v**2) + 0.002
                if occluded or boundary:
                    continue
                total += float(((target - frames[t][y, x]) ** 2).sum())
                count += 1
        errors.append(total / count if count else np.nan)
    return np.array(errors)


def smooth_random_flow(rng, frames, height, width, scale):
    """A random affine flow per pair: mostly below the motion-boundary threshold."""
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    flow = np.empty((frames, height, width, 2))
    for t in range(frames):
        for c in range(2):
            offset, gx, gy = rng.normal(0, scale), rng.normal(0, 0.02), rng.normal(0, 0.02)
            flow[t, :, :, c] = offset + gx * xs + gy * ys
    return flow


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_error_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    t_len, height, width = 4, 11, 13
    frames = rng.random((t_len, height, width, 3))
    forward = smooth_random_flow(rng, t_len - 1, height, width, 1.5)
    # Backward flow near the exact inverse plus noise: a mix of consistent and occluded pixels.
    backward = -forward + rng.normal(0, 0.6, forward.shape) * (rng.random(forward.shape) < 0.3)
    expected = reference_warping_error(frames, forward, backward)

    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double()  # noqa: E731
    got = warping_error(as_tensor(frames), as_tensor(forward), as_tensor(backward)).numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_reference_is_sensitive_to_the_mask():
    """The comparison above can fail: dropping the masks changes the reference result."""
    rng = np.random.default_rng(0)
    frames = rng.random((2, 9, 9, 3))
    forward = smooth_random_flow(rng, 1, 9, 9, 2.0)
    backward = -forward + rng.normal(0, 1.5, forward.shape)
    masked = reference_warping_error(frames, forward, backward)
    unmasked = reference_warping_error(frames, forward, -forward)
    assert not np.allclose(masked, unmasked)
