"""Reference quality and condition consistency under controlled distortions, CLIP on random
weights, and the unavailable-weights path. 6 levels each (0 and 5 increasing strengths)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from metrics import Evaluator, evaluate
from metrics.distortions import blur, content_drift, jpeg, noise
from metrics.synthetic import make_video
from metrics.video_io import Video
from tests.conftest import real_weights_dir

FRAMES, SIZE = 8, (64, 64)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return make_video("pan", frames=FRAMES, size=SIZE, seed=7).frames


def real_weights(filename: str) -> Path:
    folder = real_weights_dir()
    path = Path(folder) / filename if folder else None
    if not path or not path.is_file():
        pytest.skip(
            f"needs {filename} in $EXSVD_TEST_WEIGHTS_DIR "
            "(python -m bench weights fetch ..., then point the variable at the dir)"
        )
    return path


@pytest.fixture
def lpips_weights(monkeypatch):
    monkeypatch.setenv(
        "EXSVD_WEIGHTS_LPIPS_ALEX", str(real_weights("lpips_alex_backbone.safetensors"))
    )


DISTORTIONS = {
    "blur": (blur, (0, 0.5, 1.0, 1.5, 2.0, 3.0)),
    "noise": (noise, (0, 4, 8, 16, 24, 32)),
    "jpeg": (jpeg, (100, 90, 70, 50, 30, 10)),
}


def reference_scores(clean, distortion, metrics, **options):
    apply, levels = DISTORTIONS[distortion]
    evaluator = Evaluator(metrics, with_reference=True, **options)
    reference = Video(clean, None, "clean")
    return [evaluator(apply(clean, level), reference=reference).scalars for level in levels]


def strictly(values, worse):
    steps = np.diff(values)
    return bool((steps > 0).all() if worse == "up" else (steps < 0).all())


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
def test_psnr_and_ssim_get_strictly_worse(clean, distortion):
    results = reference_scores(clean, distortion, ["psnr", "ssim"])
    assert strictly([r["psnr"] for r in results[1:]], "down"), results
    assert strictly([r["ssim"] for r in results], "down"), results
    assert results[0]["psnr"] == pytest.approx(100, abs=1e-3)  # identical frames, capped
    assert results[0]["ssim"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
def test_lpips_gets_strictly_worse_with_real_weights(clean, distortion, lpips_weights):
    results = reference_scores(clean, distortion, ["lpips"])
    assert results[0]["lpips"] == pytest.approx(0, abs=1e-6)
    assert strictly([r["lpips"] for r in results], "up"), results


def drift_scores(metrics, **options):
    """A still shot of the condition drifting, more and more over time, to other content."""
    still = make_video("static", frames=FRAMES, size=SIZE, seed=7).frames
    other = make_video("pan", frames=FRAMES, size=SIZE, seed=99).frames
    evaluator = Evaluator(metrics, **options)
    return [evaluator(content_drift(still, other, a)).scalars for a in (0, 0.2, 0.4, 0.6, 0.8, 1)]


def test_content_drift_makes_ssim_condition_worse_and_its_slope_more_negative():
    results = drift_scores(["ssim_condition", "ssim_condition_slope"])
    assert strictly([r["ssim_condition"] for r in results], "down"), results
    assert strictly([r["ssim_condition_slope"] for r in results], "down"), results


def test_content_drift_makes_lpips_condition_worse(lpips_weights):
    results = drift_scores(["lpips_condition", "lpips_condition_slope"])
    assert strictly([r["lpips_condition"] for r in results], "up"), results
    assert strictly([r["lpips_condition_slope"] for r in results], "up"), results


def test_reference_free_drift_follows_blur_over_time(clean):
    """Blur growing over time lowers sharpness relative to frame 0: a negative drift slope."""
    growing = np.stack([blur(clean[t : t + 1], 0.4 * t)[0] for t in range(FRAMES)])
    steady = evaluate(clean, ["sharpness_drift"]).scalars["sharpness_drift"]
    blurred = evaluate(growing, ["sharpness_drift", "contrast_drift"]).scalars
    assert blurred["sharpness_drift"] < -0.5 < steady
    assert blurred["contrast_drift"] < 0


def test_a_drift_from_a_frame_0_without_its_statistic_is_an_error_not_a_silent_nan(clean):
    """A fade from black (sharpness, contrast and colour all zero at frame 0): the row says
    why, and the set mean is not quietly left short. A grey video's colourfulness is zero
    throughout: stable, a drift of 0."""
    fade = (clean * np.linspace(0, 1, len(clean))[:, None, None, None]).astype(np.uint8)
    grey = np.repeat(clean.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    names = ["sharpness_drift", "contrast_drift", "colourfulness_drift"]
    faded = evaluate(fade, names)
    assert set(faded.errors) == set(names)
    assert all(math.isnan(faded.scalars[n]) for n in names)
    assert "frame 0 has zero colourfulness" in faded.errors["colourfulness_drift"]
    greyed = evaluate(grey, names)
    assert not greyed.errors and greyed.scalars["colourfulness_drift"] == 0
    assert greyed.scalars["sharpness_drift"] != 0


def test_sharpness_drift_on_frames_under_its_kernel_is_an_error_for_it_alone():
    thin = np.random.default_rng(0).integers(0, 256, (6, 2, 40, 3), dtype=np.uint8)
    result = evaluate(thin, ["sharpness_drift", "contrast_drift"])
    assert "needs frames of at least 3 px a side" in result.errors["sharpness_drift"]
    assert "contrast_drift" not in result.errors


def test_lpips_takes_fewer_frames_a_call_as_frames_grow_and_scores_the_same(monkeypatch):
    """Memory grows with frames x pixels: large frames go through LPIPS a few at a time (1080p
    peak RSS 5.5 -> 3.5 GB at 8 frames, measured), with the same scores."""
    import torch

    from metrics.backbones import Lpips

    net = Lpips(torch.device("cpu"), allow_random=True)
    frames, reference = torch.rand(6, 3, 64, 64), torch.rand(1, 3, 64, 64)
    whole = net(frames, reference)
    calls, real = [], net.model.forward
    monkeypatch.setattr(net.model, "forward", lambda a, b: calls.append(len(a)) or real(a, b))
    net.pixels_per_call = 2 * 64 * 64 + 1
    torch.testing.assert_close(net(frames, reference), whole)
    assert calls == [2, 2, 2]


def test_clip_on_random_weights_shapes_determinism_range_and_identity(clean, caplog):
    static = make_video("static", frames=4, size=SIZE, seed=1).frames
    metrics = [
        "clip_condition",
        "clip_condition_min",
        "clip_frame_consistency",
        "clip_text",
        "clip_iqa",
    ]
    first = Evaluator(metrics, allow_random_weights=True, with_prompt=True)
    assert "RANDOM INIT" in first.provenance["clip_weights"]
    assert "No pretrained weights" not in caplog.text  # open_clip's stray line: ours says it
    a = first(clean, prompt="a textured surface panning")
    b = Evaluator(metrics, allow_random_weights=True, with_prompt=True)(
        clean, prompt="a textured surface panning"
    )
    assert a.scalars == pytest.approx(b.scalars)  # seeded random init: reproducible
    assert len(a.series["clip_condition"]) == FRAMES
    assert len(a.series["clip_frame_consistency"]) == FRAMES - 1
    assert all(-1 <= v <= 1 for v in a.series["clip_condition"])
    assert 0 <= a.scalars["clip_text"] <= 100 and 0 <= a.scalars["clip_iqa"] <= 1
    frozen = first(static, prompt="x")
    assert frozen.scalars["clip_condition"] == pytest.approx(1.0, abs=1e-5)
    assert frozen.scalars["clip_frame_consistency"] == pytest.approx(1.0, abs=1e-5)


def test_clip_batching_does_not_change_embeddings(clean):
    from metrics.backbones import ClipEncoder

    encoder = ClipEncoder("cpu", allow_random=True, batch_size=3)
    import torch

    frames = torch.from_numpy(clean).permute(0, 3, 1, 2).float() / 255
    small = encoder.encode_images(frames)
    encoder.batch_size = 64
    large = encoder.encode_images(frames)
    assert small.shape == (FRAMES, 512)
    torch.testing.assert_close(small, large, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(small.norm(dim=1), torch.ones(FRAMES))


def test_real_clip_ranks_the_condition_above_unrelated_content(clean, monkeypatch):
    monkeypatch.setenv(
        "EXSVD_WEIGHTS_CLIP_VIT_B32", str(real_weights("open_clip_model.safetensors"))
    )
    other = make_video("pan", frames=FRAMES, size=SIZE, seed=99).frames
    same = evaluate(clean, ["clip_condition"]).scalars["clip_condition"]
    drifted = evaluate(content_drift(clean, other, 1.0), ["clip_condition"]).scalars
    assert same > drifted["clip_condition"]


def test_missing_weights_make_the_metric_unavailable_not_the_run(clean):
    result = evaluate(clean, ["clip_condition", "ssim_condition"])
    assert math.isnan(result.scalars["clip_condition"])
    reason = result.unavailable["clip_condition"]
    assert "clip_vit_b32" in reason and "EXSVD_WEIGHTS_CLIP_VIT_B32" in reason
    assert os.environ["HF_HOME"] in reason  # the library cache was searched
    assert math.isfinite(result.scalars["ssim_condition"])


def test_reference_size_mismatch_is_an_error_unless_resizing(clean):
    small = Video(clean[:, ::2, ::2].copy(), None, "small.mp4")
    result = Evaluator(["psnr"], with_reference=True)(clean, reference=small)
    assert "small.mp4" in result.errors["psnr"] and "--resize-reference" in result.errors["psnr"]
    resized = Evaluator(["psnr"], with_reference=True, resize_reference=True)(
        clean, reference=small
    )
    assert 15 < resized.scalars["psnr"] < 100 and "reference resized" in "; ".join(resized.notes)


def test_frames_are_encoded_once_per_backbone(clean, monkeypatch):
    from metrics.backbones import ClipEncoder, Lpips

    evaluator = Evaluator(
        ["clip_*", "lpips_condition", "lpips_condition_slope"], allow_random_weights=True
    )
    calls = {"clip": [], "lpips": []}
    clip_encode, lpips_call = ClipEncoder.encode_images, Lpips.__call__

    def counting_encode(self, images):
        calls["clip"].append(len(images))
        return clip_encode(self, images)

    def counting_lpips(self, frames, reference):
        calls["lpips"].append(len(frames))
        return lpips_call(self, frames, reference)

    monkeypatch.setattr(ClipEncoder, "encode_images", counting_encode)
    monkeypatch.setattr(Lpips, "__call__", counting_lpips)
    result = evaluator(clean)
    assert {
        "clip_condition",
        "clip_condition_slope",
        "clip_frame_consistency",
        "clip_iqa",
        "clip_iqa_drift",
    } <= set(result.scalars)
    assert sorted(calls["clip"]) == [1, FRAMES]  # the condition once, all frames once
    assert calls["lpips"] == [FRAMES]


def test_fvd_set_level_identical_sets_zero_shift_positive(recwarn):
    """Random-init I3D (the property holds for any fixed feature extractor)."""
    clips = [make_video("pan", frames=16, size=(32, 32), seed=s).frames for s in range(3)]
    same = Evaluator(["fvd"], with_reference=True, allow_random_weights=True)
    shifted = Evaluator(["fvd"], with_reference=True, allow_random_weights=True)
    for clip in clips:
        reference = Video(clip, None, "ref")
        assert math.isnan(same(clip, reference=reference).scalars.get("fvd", math.nan))
        shifted(blur(clip, 2.0), reference=reference)
    zero, positive = same.compute_set(), shifted.compute_set()
    assert zero["fvd_clips"] == 3 and zero["fvd_reference_clips"] == 3
    assert abs(zero["fvd"]) < 1e-6 * max(1.0, positive["fvd"])
    assert positive["fvd"] > 0
    assert any("unstable" in str(w.message) for w in recwarn)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_min_side_is_where_its_network_starts_to_work(net):
    """The declared minimum runs; alex fails below it (the failure min_side turns into a
    per-metric error), so the figure is the real limit, not a guess."""
    import torch

    from metrics.backbones import Lpips

    model = Lpips("cpu", net, allow_random=True)
    side = Lpips.min_side
    frames = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    assert model(frames, frames[:1]).shape == (2,)
    if net == "alex":
        with pytest.raises(RuntimeError, match="too small"):
            model(frames[..., : side - 8, : side - 8], frames[:1, :, : side - 8, : side - 8])


def test_metrics_refuse_frames_below_their_min_side_and_the_rest_still_score():
    from metrics.functional.quality import SSIM_MIN_SIDE

    names = ["ssim_condition", "frame_diff_flicker", "warping_error"]
    small = make_video("pan", frames=4, size=(SSIM_MIN_SIDE - 4, 10), seed=3).frames  # H, W
    edge = make_video("pan", frames=4, size=(SSIM_MIN_SIDE + 1,) * 2, seed=3).frames
    low = Evaluator(names, flow="dis")(small)
    # sizes read width x height, as the video readers' messages do
    assert "needs frames of at least 11 px a side, got 10x7" in low.errors["ssim_condition"]
    assert "10x7 frames are too small for dis optical flow" in low.errors["warping_error"]
    assert math.isfinite(low.scalars["frame_diff_flicker"])
    scored = Evaluator(names, flow="dis")(edge)  # 12 px: SSIM's window and DIS both fit
    assert not scored.errors and all(math.isfinite(v) for v in scored.scalars.values())


@pytest.mark.parametrize(
    ("size", "fits"),
    [
        ((7, 40), False),
        ((11, 11), False),
        ((40, 8), True),
        ((8, 12), True),
        ((8, 40), True),
        ((12, 200), True),
    ],
)
def test_dis_flow_limits_are_opencvs_on_both_sides(size, fits):
    """OpenCV's DIS needs 8 px on the shorter side and 12 on the longer: thin frames are the
    flow metric's error, not a cv2 traceback that stops the whole evaluation; frames under 16 px
    high and wider (which crash OpenCV 5's DIS) run transposed."""
    frames = make_video("pan", frames=3, size=(200, 200), seed=1).frames[:, : size[0], : size[1]]
    result = Evaluator(["warping_error"], flow="dis")(frames)
    if fits:
        assert not result.errors and math.isfinite(result.scalars["warping_error"])
    else:
        assert "8 px on the shorter side and 12 on the longer" in result.errors["warping_error"]


def test_dis_flow_of_a_wide_thin_strip_is_the_strip_turned_back():
    """The transposed route returns flow in the frame's own axes: u along the width."""
    import cv2
    import torch

    from metrics.flow import DISFlow

    rng = np.random.default_rng(0)
    strip = cv2.GaussianBlur(rng.integers(0, 255, (12, 203, 3), dtype=np.uint8), (0, 0), 2)
    frames = torch.from_numpy(np.stack([strip[:, 3:], strip[:, :-3]])).permute(0, 3, 1, 2) / 255
    flow = DISFlow()(frames[:1], frames[1:])[0, :, :, 20:-20]  # frame 1 is frame 0 moved 3 px
    assert flow[0].median() == pytest.approx(3, abs=0.3)
    assert flow[1].abs().median() < 0.3


def test_metric_update_takes_condition_reference_and_networks():
    from metrics import create_metric

    video = make_video("pan", frames=6, size=(32, 32), seed=2).frames
    other = make_video("pan", frames=6, size=(32, 32), seed=5).frames
    by_evaluator = evaluate(video, ["ssim_condition"], flow="dis").scalars["ssim_condition"]
    assert create_metric("ssim_condition").update(video).value == by_evaluator  # frame 0
    assert create_metric("ssim_condition").update(video, condition=other[0]).value < 0.9
    assert create_metric("psnr").update(video, reference=video).value == 100.0
    lpips = create_metric("lpips", allow_random_weights=True).update(video, reference=other)
    assert math.isfinite(lpips.value) and lpips.value > 0


def test_a_condition_image_follows_the_video_rules():
    video = make_video("pan", frames=6, size=(32, 32), seed=2).frames
    as_uint8 = evaluate(video, ["ssim_condition"], condition=video[3], flow="dis")
    as_float = evaluate(video, ["ssim_condition"], condition=video[3] / 255.0, flow="dis")
    assert as_float.scalars == as_uint8.scalars  # floats in [0, 1] are not divided by 255 again
    grey = evaluate(video, ["ssim_condition"], condition=video[3, :, :, 0], flow="dis")
    assert math.isfinite(grey.scalars["ssim_condition"])


def test_a_resized_reference_still_says_it_is_shorter():
    video = make_video("pan", frames=8, size=(32, 32), seed=0).frames
    short = Video(make_video("pan", frames=4, size=(48, 48), seed=0).frames, 8.0, "r.npy", ())
    result = Evaluator(["psnr"], with_reference=True, resize_reference=True, flow="dis")(
        video, reference=short
    )
    assert "reference has 4 frames, compared over the first 4" in result.notes
    slower = Video(short.frames, 4.0, "r.npy", ())
    video_at_8 = Video(video, 8.0, "v.npy", ())
    notes = Evaluator(["psnr"], with_reference=True, resize_reference=True, flow="dis")(
        video_at_8, reference=slower
    ).notes
    assert "reference is 4 fps, the video 8 fps: compared frame by frame" in notes


def test_another_clip_model_needs_its_own_checkpoint(monkeypatch, tmp_path):
    from metrics.backbones import ClipEncoder
    from metrics.errors import BenchError

    monkeypatch.setenv("EXSVD_WEIGHTS_CLIP_VIT_B32", str(tmp_path / "b32.bin"))  # never used
    with pytest.raises(BenchError, match="ViT-S-32: has no weights the project resolves"):
        ClipEncoder("cpu", "ViT-S-32")
    with pytest.raises(BenchError, match="does not exist"):
        ClipEncoder("cpu", "ViT-S-32", weights=str(tmp_path / "s32.bin"))


@pytest.mark.parametrize("content", [b"not safetensors", b"\x80\x02not a pickle"])
def test_a_damaged_clip_checkpoint_is_a_one_line_error(tmp_path, content):
    from metrics.backbones import ClipEncoder
    from metrics.errors import BenchError

    damaged = tmp_path / ("clip.safetensors" if b"safe" in content else "clip.bin")
    damaged.write_bytes(content)
    with pytest.raises(BenchError, match=r"cannot be loaded as open_clip ViT-B-32") as info:
        ClipEncoder("cpu", weights=str(damaged))
    assert str(info.value).startswith(str(damaged)) and "\n" not in str(info.value)


@pytest.mark.parametrize("length", [2, 4, 9, 50, 400])
def test_slope_metrics_declare_the_range_their_values_can_reach(length):
    """A step from the bottom to the top of a curve's range is the steepest least-squares
    slope; the declared ranges hold it (the old (-2, 2) for a cosine did not)."""
    import torch

    from metrics import create_metric
    from metrics.functional.curves import normalised_slope

    step = torch.zeros(length)
    step[length // 2 :] = 1.0
    steepest = normalised_slope(step)  # for a curve in [0, 1]
    assert steepest <= 1.5 and (length < 50 or steepest > 1.45)
    for name, span in (("clip_condition_slope", 2), ("ssim_condition_slope", 2),
                       ("lpips_condition_slope", 1), ("clip_iqa_drift", 1)):
        low, high = create_metric(name).info.value_range
        assert low <= -span * steepest and span * steepest <= high, name


def test_resizing_read_only_frames_warns_nothing():
    """Frames read from a file are read-only arrays; torch warned about it on every resize."""
    import warnings

    from metrics.evaluator import resize_frames

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resize_frames(frames, (4, 6)).shape == (2, 4, 6, 3)
