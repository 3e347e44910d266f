"""Temporal metrics on synthetic videos with known motion: accuracy and controlled distortions.

Each distortion is applied at 6 levels (0 and 5 increasing amounts) and the metric must respond
strictly monotonically; a constant brightness shift must move the metrics much less.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import Evaluator, create_metric, list_metrics
from metrics.distortions import (
    brightness_shift,
    drop_frames,
    duplicate_frames,
    flicker,
    jittered_trajectory,
)
from metrics.errors import MetricInputError
from metrics.flow import DISFlow, compute_flows
from metrics.registry import UnknownNameError
from metrics.synthetic import make_video

FRAMES, SIZE = 20, (96, 96)
FLICKER = ("warping_error", "frame_diff_flicker")
SMOOTHNESS = ("flow_acceleration", "interpolation_score")


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(None, flow="dis")


def scores(evaluator, frames: np.ndarray) -> dict[str, float]:
    return evaluator(frames).scalars


def assert_strictly(values: list[float], worse: str) -> None:
    steps = np.diff(values)
    assert (steps > 0).all() if worse == "up" else (steps < 0).all(), values


def pan(frames=FRAMES, **kw):
    return make_video("pan", frames=frames, size=SIZE, seed=3, speed=1.5, direction_deg=30, **kw)


@pytest.mark.parametrize(
    ("kind", "bound"), [("pan", 0.1), ("zoom", 0.15), ("rotate", 0.15), ("sprites", 0.25)]
)
def test_dis_end_point_error_on_known_motion(kind, bound):
    video = make_video(kind, frames=6, size=(128, 128), seed=1)
    frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255
    flows = compute_flows(frames, DISFlow())
    truth = torch.from_numpy(video.flow).permute(0, 3, 1, 2)
    error = (flows.forward - truth).norm(dim=1)
    keep = ~torch.from_numpy(video.occluded)
    keep[:, :8], keep[:, -8:], keep[:, :, :8], keep[:, :, -8:] = False, False, False, False
    epe = float(error[keep].mean())
    assert epe < bound, f"{kind}: DIS end-point error {epe:.3f} px (bound {bound})"
    assert float(truth.norm(dim=1)[keep].mean()) > 2 * bound  # the motion is not trivial


def test_flicker_injection_makes_both_flicker_metrics_worse(evaluator):
    base = pan().frames
    results = [
        scores(evaluator, flicker(base, amount, seed=0))
        for amount in (0, 0.02, 0.04, 0.06, 0.08, 0.1)
    ]
    assert_strictly([r["warping_error"] for r in results], "up")
    assert_strictly([r["frame_diff_flicker"] for r in results], "down")


def test_temporal_jitter_makes_both_smoothness_metrics_worse(evaluator):
    results = []
    for amount in (0, 0.4, 0.8, 1.2, 1.6, 2.0):
        path = jittered_trajectory(FRAMES, 1.5, 30, amount, seed=0)
        results.append(
            scores(
                evaluator,
                make_video("pan", frames=FRAMES, size=SIZE, seed=3, trajectory=path).frames,
            )
        )
    assert_strictly([r["flow_acceleration"] for r in results], "up")
    assert_strictly([r["interpolation_score"] for r in results], "down")


def test_frame_duplication_makes_both_smoothness_metrics_worse(evaluator):
    base = pan().frames
    results = [scores(evaluator, duplicate_frames(base, k)) for k in range(6)]
    assert_strictly([r["flow_acceleration"] for r in results], "up")
    assert_strictly([r["interpolation_score"] for r in results], "down")


def test_frame_drops_make_both_smoothness_metrics_worse(evaluator):
    results = [scores(evaluator, drop_frames(pan(FRAMES + k).frames, k)) for k in range(6)]
    assert_strictly([r["flow_acceleration"] for r in results], "up")
    assert_strictly([r["interpolation_score"] for r in results], "down")


def test_constant_brightness_shift_leaves_flicker_and_smoothness_nearly_unchanged(evaluator):
    """Tolerance: each metric moves by less than 10% of its change under the mildest flicker
    (amount 0.02) or, for smoothness, the mildest jitter (0.4 px); and by < 5% relative."""
    base = pan().frames
    plain = scores(evaluator, base)
    shifted = scores(evaluator, brightness_shift(base, 20))
    mild_flicker = scores(evaluator, flicker(base, 0.02, seed=0))
    mild_jitter = scores(
        evaluator,
        make_video(
            "pan",
            frames=FRAMES,
            size=SIZE,
            seed=3,
            trajectory=jittered_trajectory(FRAMES, 1.5, 30, 0.4, seed=0),
        ).frames,
    )
    for name, reference in [
        *((n, mild_flicker) for n in FLICKER),
        *((n, mild_jitter) for n in SMOOTHNESS),
    ]:
        change = abs(shifted[name] - plain[name])
        assert change < 0.1 * abs(reference[name] - plain[name]), (name, plain, shifted)
        assert change < 0.05 * abs(plain[name]) + 1e-6, (name, plain[name], shifted[name])


def test_motion_amount_guards_against_static_videos(evaluator):
    static = scores(evaluator, make_video("static", frames=FRAMES, size=SIZE, seed=3).frames)
    moving = scores(evaluator, pan().frames)
    # A frozen video is "perfect" on flicker and smoothness ...
    assert static["warping_error"] < 1e-6 and static["frame_diff_flicker"] == 1.0
    assert static["flow_acceleration"] < 1e-4
    # ... and motion amount is what exposes it.
    assert static["motion_magnitude"] < 0.05
    assert moving["motion_magnitude"] == pytest.approx(1.5, rel=0.05)
    assert math.isnan(static["motion_direction_consistency"])
    assert moving["motion_direction_consistency"] > 0.99


def test_slowdown_ratio_follows_the_trajectory(evaluator):
    steady = scores(evaluator, pan().frames)["motion_slowdown"]
    speeds = np.linspace(2.5, 0.5, FRAMES - 1)
    path = np.concatenate([[0.0], np.cumsum(speeds)])[:, None] * np.array([1.0, 0.0])
    slowing = scores(
        evaluator, make_video("pan", frames=FRAMES, size=SIZE, seed=3, trajectory=path).frames
    )["motion_slowdown"]
    assert steady == pytest.approx(1.0, abs=0.05)
    expected = speeds[-6:].mean() / speeds[:6].mean()
    assert slowing == pytest.approx(expected, rel=0.1)


def test_series_lengths_and_values(evaluator):
    result = evaluator(pan().frames)
    assert len(result.series["warping_error"]) == FRAMES - 1
    assert len(result.series["flow_acceleration"]) == FRAMES - 2
    assert result.scalars["warping_error"] == pytest.approx(result.series["warping_error"].mean())
    assert result.provenance["flow_backend"] == "dis"
    assert "weight-free" in result.provenance["flow_weights"]


def test_too_few_frames_is_reported_per_metric(evaluator):
    result = evaluator(pan(frames=2).frames)
    assert math.isfinite(result.scalars["warping_error"])
    assert math.isnan(result.scalars["flow_acceleration"])
    assert "2 frames, too few" in result.errors["flow_acceleration"]
    assert "flow_acceleration, interpolation_score" in result.errors["flow_acceleration"]
    assert "warping_error" not in result.errors
    with pytest.raises(MetricInputError, match="needs at least 2 frames"):
        create_metric("warping_error", flow="dis").update(pan(frames=2).frames[:1])


def test_registry_metadata_and_stateful_wrapper():
    names = list_metrics()
    assert {
        "warping_error",
        "frame_diff_flicker",
        "flow_acceleration",
        "interpolation_score",
        "motion_magnitude",
        "motion_slowdown",
        "motion_direction_consistency",
    } <= set(names)
    assert list_metrics("motion_*") == [n for n in names if n.startswith("motion_")]
    assert set(list_metrics(family="flicker")) == set(FLICKER)
    with pytest.raises(UnknownNameError, match="did you mean 'warping_error'"):
        create_metric("warping_eror")
    metric = create_metric("frame_diff_flicker")
    assert metric.info.higher_is_better is True
    a = metric.update(pan().frames).value
    b = metric.update(flicker(pan().frames, 0.1)).value
    assert metric.compute() == pytest.approx((a + b) / 2)
    metric.reset()
    assert math.isnan(metric.compute())
