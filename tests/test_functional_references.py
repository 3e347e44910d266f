"""Functional cores against independent references: hand-made flows and embeddings with
values worked out by hand, scipy / piq / numpy formulas, and the FVD clip layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics.functional import consistency, flicker, motion, quality
from metrics.functional.warp import compose


def constant_flows(vectors) -> torch.Tensor:
    """[P, 2, 8, 8] flows, pair p moving by vectors[p] everywhere."""
    return torch.tensor(vectors, dtype=torch.float32)[:, :, None, None].expand(-1, -1, 8, 8)


def test_direction_consistency_sees_a_reversal_and_a_turn():
    forward = constant_flows([(2, 0), (2, 0), (-2, 0), (0, 3), (0, 0.01)])
    got = motion.direction_consistency(forward)
    assert got[:3].tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-6)
    assert math.isnan(got[3])  # the last pair barely moves: no direction


def test_compose_follows_the_first_step_before_taking_the_second():
    height, width = 8, 64
    xs = torch.arange(width, dtype=torch.float32).expand(height, width)
    first = torch.stack([torch.full((height, width), 3.0), torch.zeros(height, width)])[None]
    second = torch.stack([xs / 100, torch.zeros(height, width)])[None]  # depends on where you are
    flow, inside = compose(first, second)
    expected = 3 + (xs + 3) / 100  # first(x) + second(x + first(x))
    assert inside[0, :, : width - 4].all()
    torch.testing.assert_close(flow[0, 0, :, : width - 4], expected[:, : width - 4])


def test_clip_scores_on_hand_made_embeddings():
    e1, e2 = torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0])
    frames = torch.stack([e1, e2, -e1])
    assert consistency.clip_score(frames, e1[None]).tolist() == pytest.approx([100, 0, 0])
    assert consistency.consecutive_cosine(torch.stack([e1, e1, e2])).tolist() == [1.0, 0.0]
    assert consistency.cosine_to_condition(frames, e1[None]).tolist() == [1.0, 0.0, -1.0]


def frames_uint8(seed: int, count: int = 5, size: int = 24) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (count, 3, size, size))).float() / 255


def test_psnr_matches_piq_frame_by_frame():
    import piq

    frames, reference = frames_uint8(0), frames_uint8(1)
    got = quality.psnr(frames, reference)
    expected = torch.stack([piq.psnr(f[None], r[None], data_range=1.0)
                            for f, r in zip(frames, reference, strict=True)])
    torch.testing.assert_close(got.float(), expected.float(), atol=1e-4, rtol=0)


def test_frame_difference_is_vbench_mean_absolute_error_in_grey_levels():
    frames = frames_uint8(2)
    got = flicker.frame_difference(frames)
    pixels = (frames * 255).round().numpy()
    expected = [np.abs(pixels[t + 1] - pixels[t]).mean() for t in range(len(pixels) - 1)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_sharpness_is_the_variance_of_scipys_laplacian():
    from scipy import ndimage

    frames = frames_uint8(3)
    got = quality.sharpness(frames)
    greys = quality.grey(frames).squeeze(1).double().numpy() * 255  # the 0-255 scale
    expected = [ndimage.laplace(g)[1:-1, 1:-1].var(ddof=1) for g in greys]  # valid pixels only
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-4)


def test_colourfulness_of_a_flat_colour_by_hand():
    frame = torch.zeros(1, 3, 8, 8)
    frame[:, 0], frame[:, 1], frame[:, 2] = 1.0, 0.0, 0.0  # pure red in [0, 1]
    rg, yb = 255.0, 127.5  # R - G and (R + G) / 2 - B, no spread on a flat image
    expected = 0.3 * math.hypot(rg, yb)  # Hasler-Suesstrunk: sigma terms 0
    assert quality.colourfulness(frame).item() == pytest.approx(expected, rel=1e-4)


def test_fvd_clips_cover_a_long_video_end_to_end():
    from metrics.fvd import clip_features

    seen = []

    def i3d(batch):  # a stub that records each clip's first frame
        seen.extend(batch[:, 0, 0, 0, 0].tolist())
        return torch.zeros(len(batch), 400)

    video = np.repeat(np.arange(64, dtype=np.uint8)[:, None, None, None], 8, axis=1)
    video = np.repeat(np.repeat(video, 8, axis=2), 3, axis=3)  # frame t is the grey level t
    features, centres = clip_features(video, i3d, "cpu")
    assert features.shape == (4, 400)
    assert centres.tolist() == [0.125, 0.375, 0.625, 0.875]  # 0-15, 16-31, 32-47, 48-63


def test_interpolated_middle_frame_of_a_constant_pan_is_exact_and_averages_both_sides():
    from metrics.functional.smoothness import interpolate_middle

    width, speed = 48, 2.0  # whole pixels: bilinear sampling is exact
    xs = torch.arange(width, dtype=torch.float32)
    frames = torch.stack([torch.sin((xs - speed * t) / 3).expand(3, 8, width) for t in range(3)])
    forward = torch.tensor([speed, 0.0])[None, :, None, None].expand(2, 2, 8, width).clone()
    backward = -forward
    middle, covered = interpolate_middle(frames, forward, backward)
    inner = slice(6, width - 6)  # away from the borders the flows leave
    torch.testing.assert_close(middle[0][..., inner], frames[1][..., inner], atol=1e-5, rtol=0)
    assert covered[0][:, inner].all()
    still = torch.zeros(2, 2, 8, 8)
    dark_to_light = torch.stack([torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    middle, _ = interpolate_middle(dark_to_light, still, still)
    assert torch.allclose(middle, torch.full_like(middle, 0.5))  # the mean of both neighbours
