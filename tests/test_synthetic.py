"""Synthetic videos: exact ground-truth flow, occlusions, determinism; controlled distortions."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from metrics.distortions import (
    brightness_shift,
    drop_frames,
    duplicate_frames,
    flicker,
    jittered_trajectory,
    nested_positions,
)
from metrics.errors import VideoInputError
from metrics.synthetic import KINDS, Texture, make_set, make_video

SIZE = (64, 64)


def _valid(mask: np.ndarray, border: int = 6) -> np.ndarray:
    """Non-occluded pixels at least ``border`` px from the frame edge."""
    ok = ~mask
    ok[:border] = ok[-border:] = False
    ok[:, :border] = ok[:, -border:] = False
    return ok


def _warp_error(video, flow: np.ndarray) -> float:
    """Mean abs error of frame t against frame t+1 backward-warped with ``flow`` (bilinear)."""
    _, h, w, _ = video.frames.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    errs = []
    for t in range(len(flow)):
        warped = cv2.remap(
            video.frames[t + 1],
            xs + flow[t, ..., 0],
            ys + flow[t, ..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        diff = np.abs(warped.astype(np.float64) - video.frames[t].astype(np.float64))
        errs.append(diff[_valid(video.occluded[t])].mean())
    return float(np.mean(errs))


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs, ys


# ----------------------------------------------------------------------------- generator


def test_shapes_and_dtypes_non_square():
    v = make_video("sprites", frames=5, size=(40, 56), seed=3)
    assert v.frames.shape == (5, 40, 56, 3) and v.frames.dtype == np.uint8
    assert v.flow.shape == (4, 40, 56, 2) and v.flow.dtype == np.float32
    assert v.occluded.shape == (4, 40, 56) and v.occluded.dtype == bool
    assert v.kind == "sprites"
    assert v.frames.std() > 10  # textured, not flat


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_per_seed(kind):
    a = make_video(kind, frames=6, size=SIZE, seed=5)
    b = make_video(kind, frames=6, size=SIZE, seed=5)
    c = make_video(kind, frames=6, size=SIZE, seed=6)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.flow, b.flow) and np.array_equal(a.occluded, b.occluded)
    assert a.params == b.params
    assert np.abs(a.frames[0].astype(int) - c.frames[0].astype(int)).mean() > 5


@pytest.mark.parametrize("kind", ["pan", "sprites", "zoom"])
@pytest.mark.parametrize("texture_scale", [1.0, 2.0])
def test_params_regenerate_after_json_round_trip(kind, texture_scale):
    v = make_video(kind, frames=6, size=(48, 40), seed=11, texture_scale=texture_scale)
    again = make_video(**json.loads(json.dumps(v.params)))
    assert np.array_equal(v.frames, again.frames)
    assert np.array_equal(v.flow, again.flow)


def test_texture_is_analytic_and_band_limited():
    tex = Texture(np.random.default_rng(0))
    x = np.linspace(-50.0, 200.0, 101)
    y = np.linspace(10.0, 90.0, 77)
    gx, gy = np.meshgrid(x, y)
    ref = tex.texture(gx, gy)
    assert ref.shape == (77, 101, 3) and ref.dtype == np.float32
    assert ref.min() >= 0.0 and ref.max() <= 1.0
    # The fast separable path (similarity maps) agrees with pointwise evaluation.
    a = np.deg2rad(30.0)
    lin = 0.8 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    off = np.array([3.0, -7.0])
    fast = tex.texture_grid(lin, off, x, y)
    qx = lin[0, 0] * gx + lin[0, 1] * gy + off[0]
    qy = lin[1, 0] * gx + lin[1, 1] * gy + off[1]
    slow = tex.texture(qx, qy)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    shear = np.array([[1.0, 0.3], [0.0, 1.0]])  # not a similarity: pointwise fallback
    slow = tex.texture(gx + 0.3 * gy, gy)
    np.testing.assert_allclose(tex.texture_grid(shear, np.zeros(2), x, y), slow, atol=1e-6)
    # Band-limited: along any line, (almost) no power above 1/5 cycle per pixel.
    for angle in (0.0, 1.0, 2.0):
        d = np.arange(4096.0)
        line = tex.texture(d * np.cos(angle), 37.0 + d * np.sin(angle)).mean(1)
        power = np.abs(np.fft.rfft((line - line.mean()) * np.hanning(len(d)))) ** 2
        freq = np.fft.rfftfreq(len(d))
        assert power[freq > 0.2].sum() < 1e-3 * power.sum()
        assert power[freq > 0.05].sum() > 1e-2 * power.sum()  # but not blurry either


def test_frames_sample_the_texture_exactly():
    """A pan by whole pixels moves the content by whole pixels: frames match bit for bit."""
    v = make_video("pan", frames=4, size=SIZE, speed=2.0, direction_deg=0.0)  # +2 px in x
    for t in range(3):
        assert np.array_equal(v.frames[t + 1][:, 2:], v.frames[t][:, :-2])
    v = make_video("pan", frames=3, size=SIZE, speed=3.0, direction_deg=90.0)  # content moves up
    assert np.array_equal(v.frames[1][:-3], v.frames[0][3:])


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("pan", {}),
        ("pan", {"speed": 2.7, "direction_deg": 33.0}),
        ("zoom", {"zoom": 1.04}),
        ("zoom", {"zoom": 0.97}),
        ("rotate", {"rotation_deg": 2.5}),
        ("sprites", {}),
        ("zoom", {"zoom": 1.03, "sprites": 2}),
    ],
)
def test_ground_truth_flow_warps_frames_onto_each_other(kind, kw):
    v = make_video(kind, frames=8, size=SIZE, seed=2, **kw)
    exact = _warp_error(v, v.flow)
    assert exact < 2.0
    assert _warp_error(v, np.zeros_like(v.flow)) > 3 * exact + 1.0
    assert _warp_error(v, -v.flow) > 3 * exact + 1.0


def test_warp_check_rejects_a_slightly_wrong_pan_flow():
    v = make_video("pan", frames=8, size=SIZE, seed=1, speed=2.0)
    exact = _warp_error(v, v.flow)
    assert _warp_error(v, v.flow * 1.5) > 3 * exact + 1.0
    assert _warp_error(v, v.flow * 0) > 3 * exact + 1.0


def test_pan_flow_equals_velocity_everywhere():
    v = make_video("pan", frames=6, size=SIZE, speed=1.5, direction_deg=0.0)
    np.testing.assert_allclose(v.flow[..., 0], 1.5, atol=1e-5)
    np.testing.assert_allclose(v.flow[..., 1], 0.0, atol=1e-5)
    v = make_video("pan", frames=6, size=SIZE, speed=2.0, direction_deg=45.0)
    np.testing.assert_allclose(v.flow[..., 0], np.sqrt(2.0), atol=1e-5)
    np.testing.assert_allclose(v.flow[..., 1], -np.sqrt(2.0), atol=1e-5)  # up on screen
    # Content leaving through the right edge is occluded; nothing else is.
    v = make_video("pan", frames=4, size=SIZE, speed=2.0, direction_deg=0.0)
    assert v.occluded[:, :, -2:].all() and not v.occluded[:, :, :-2].any()


def test_zoom_flow_is_radial_zero_at_centre_and_grows_outward():
    h = w = 65  # odd: the centre is a pixel
    v = make_video("zoom", frames=4, size=(h, w), zoom=1.05)
    xs, ys = _grid(h, w)
    rx, ry = xs - 32, ys - 32
    f = v.flow[1].astype(np.float64)
    assert np.abs(f[32, 32]).max() < 1e-5
    cross = f[..., 0] * ry - f[..., 1] * rx
    assert np.abs(cross).max() < 1e-3  # parallel to the radius
    assert ((f[..., 0] * rx + f[..., 1] * ry)[(rx != 0) | (ry != 0)] > 0).all()  # outward
    mag = np.hypot(f[32, 32:, 0], f[32, 32:, 1])
    assert (np.diff(mag) > 0).all()
    # Matches OpenCV's own zoom about the centre: frame t+1 ~ frame t magnified by 1.05.
    m = cv2.getRotationMatrix2D((32.0, 32.0), 0.0, 1.05)
    pred = cv2.warpAffine(v.frames[1], m, (w, h), flags=cv2.INTER_LINEAR)
    inner = np.s_[8:-8, 8:-8]
    err = np.abs(pred[inner].astype(float) - v.frames[2][inner].astype(float)).mean()
    assert err < 2.0


def test_rotate_flow_is_tangential_counter_clockwise():
    h = w = 65
    deg = 2.0
    v = make_video("rotate", frames=4, size=(h, w), rotation_deg=deg)
    xs, ys = _grid(h, w)
    rx, ry = xs - 32, ys - 32
    f = v.flow[0].astype(np.float64)
    r = np.hypot(rx, ry)
    away = r > 3
    # A chord of a rotation by deg: angle to the tangent is deg / 2, length 2 r sin(deg / 2).
    mag = np.hypot(f[..., 0], f[..., 1])
    cos_to_radius = (f[..., 0] * rx + f[..., 1] * ry)[away] / (mag * r)[away]
    assert np.abs(cos_to_radius).max() < np.sin(np.deg2rad(deg)) + 1e-3
    np.testing.assert_allclose(mag, 2 * r * np.sin(np.deg2rad(deg) / 2), atol=1e-4)
    assert f[32, 60, 1] < 0 and f[32, 4, 1] > 0  # counter-clockwise on screen (y down)
    m = cv2.getRotationMatrix2D((32.0, 32.0), deg, 1.0)
    pred = cv2.warpAffine(v.frames[0], m, (w, h), flags=cv2.INTER_LINEAR)
    inner = np.s_[12:-12, 12:-12]
    err = np.abs(pred[inner].astype(float) - v.frames[1][inner].astype(float)).mean()
    assert err < 2.0


def test_sprites_flow_and_occlusion():
    v = make_video("sprites", frames=10, size=SIZE, seed=4)
    assert len(v.sprite_info) == 3
    _, h, w, _ = v.frames.shape
    xs, ys = _grid(h, w)
    visible = v.flow[0][~v.occluded[0]]
    bg_speed = np.hypot(visible[:, 0], visible[:, 1]).min()  # slowest visible motion: the pan
    max_speed = max(np.hypot(*s["velocity"]) for s in v.sprite_info) + bg_speed
    border = np.zeros((h, w), bool)
    border[:3] = border[-3:] = True
    border[:, :3] = border[:, -3:] = True
    for t in range(len(v.flow)):
        dist = []
        for s in v.sprite_info:
            cx, cy = np.add(s["centre0"], np.multiply(t, s["velocity"]))
            dist.append(np.hypot(xs - cx, ys - cy) - s["radius"])
        dist = np.stack(dist)  # signed distance to each outline, negative inside
        for i, s in enumerate(v.sprite_info):
            # Well inside sprite i and not under a later sprite: flow is the sprite's velocity.
            core = (dist[i] < -2) & (dist[i + 1 :] > 2).all(0)
            if core.any():
                got = v.flow[t][core]
                want = np.broadcast_to(s["velocity"], got.shape)
                np.testing.assert_allclose(got, want, atol=1e-5)
        # Occlusions lie near a sprite outline (within the motion plus the anti-aliasing margin)
        # or at the frame border, and every visible outline is marked.
        near_edge = (np.abs(dist) < 2 + max_speed + 0.5).any(0)
        occ = v.occluded[t]
        assert not (occ & ~near_edge & ~border).any()
        assert (occ & ~border).any()
        for i in range(len(v.sprite_info)):
            ring = (np.abs(dist[i]) < 0.5) & ~border
            assert occ[ring].all()
        assert occ.mean() < 0.5


def test_background_covered_by_a_sprite_is_occluded_but_uncovered_is_not():
    """Static background, one fast sprite: ahead of it is covered next frame, behind is not."""
    frames = 6
    v = make_video(
        "pan",
        frames=frames,
        size=(96, 96),
        seed=0,
        speed=8.0,
        sprites=1,
        trajectory=np.zeros((frames, 2)),
    )
    (s,) = v.sprite_info
    vel = np.asarray(s["velocity"])
    speed = np.hypot(*vel)
    assert speed > 5
    unit = vel / speed
    xs, ys = _grid(96, 96)
    for t in range(frames - 1):
        c = np.asarray(s["centre0"]) + t * vel
        rel_x, rel_y = xs - c[0], ys - c[1]
        along = rel_x * unit[0] + rel_y * unit[1]
        across = np.abs(rel_x * unit[1] - rel_y * unit[0])
        dist = np.hypot(rel_x, rel_y) - s["radius"]
        inner = np.zeros((96, 96), bool)
        inner[4:-4, 4:-4] = True
        strip = inner & (across < s["radius"] / 2)
        ahead = strip & (along > 0) & (dist > 2.5) & (dist < speed - 3)
        behind = strip & (along < 0) & (dist > 2.5) & (dist < speed - 3)
        assert v.occluded[t][ahead].all()
        assert not v.occluded[t][behind].any()
        np.testing.assert_allclose(v.flow[t][behind], 0.0, atol=1e-6)
        if t == 2:
            assert ahead.sum() > 5 and behind.sum() > 5
    assert _warp_error(v, v.flow) < 2.0


def test_static_video_has_no_motion():
    v = make_video("static", frames=5, size=SIZE, seed=9)
    assert (v.frames == v.frames[0]).all()
    assert not v.flow.any() and not v.occluded.any()
    with pytest.raises(ValueError):
        make_video("static", sprites=2)


@pytest.mark.parametrize("kind", ["static", "sprites"])
def test_texture_scale_makes_content_coarser(kind):
    """Doubling every wavelength about halves the spatial gradients (sinusoids' gradients go as
    1 / wavelength); the default is scale 1, bit for bit."""

    def gradient(scale: float) -> float:
        frames = make_video(kind, frames=2, size=SIZE, seed=4, texture_scale=scale).frames
        pixels = frames.astype(np.float64)
        return sum(float(np.abs(np.diff(pixels, axis=axis)).mean()) for axis in (1, 2))

    default = make_video(kind, frames=2, size=SIZE, seed=4).frames
    assert np.array_equal(default, make_video(kind, frames=2, size=SIZE, seed=4,
                                              texture_scale=1.0).frames)
    assert 0.35 < gradient(2.0) / gradient(1.0) < 0.7


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        make_video("spin")
    with pytest.raises(ValueError, match="texture_scale"):
        make_video("pan", texture_scale=0)
    with pytest.raises(ValueError):
        make_video("pan", frames=5, trajectory=np.zeros((4, 2)))


def test_make_set_is_reproducible_and_mixed():
    a = make_set(7, frames=4, size=(32, 32), seed=10)
    b = make_set(7, frames=4, size=(32, 32), seed=10)
    assert [v.kind for v in a] == [KINDS[i % len(KINDS)] for i in range(7)]
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(a, b, strict=True))
    firsts = {a[i].frames[0].tobytes() for i in range(7)}
    assert len(firsts) == 7
    only = make_set(3, frames=4, size=(32, 32), kinds=("zoom",))
    assert [v.kind for v in only] == ["zoom"] * 3


# ----------------------------------------------------------------------------- distortions


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return make_video("pan", frames=10, size=(32, 32), seed=1, speed=2.0).frames


def test_flicker_zero_is_identity_and_amounts_are_nested(clip):
    before = clip.copy()
    assert np.array_equal(flicker(clip, 0.0), clip)
    amounts = [0.01, 0.03, 0.1, 0.3]
    outs = [flicker(clip, a, seed=3) for a in amounts]
    assert np.array_equal(clip, before)  # input untouched
    assert all(o.dtype == np.uint8 and o.shape == clip.shape for o in outs)
    err = [np.abs(o.astype(float) - clip.astype(float)).mean() for o in outs]
    assert (np.diff(err) > 0).all()
    # On a static clip the frame-to-frame change grows strictly with the amount.
    still = make_video("static", frames=10, size=(32, 32), seed=2).frames
    assert np.abs(np.diff(still.astype(float), axis=0)).mean() == 0
    change = [np.abs(np.diff(flicker(still, a).astype(float), axis=0)).mean() for a in amounts]
    assert (np.diff(change) > 0).all()
    assert change[0] > 0
    # The same draws for every amount: on flat grey (no clipping) the per-frame shift scales.
    grey = np.full((10, 8, 8, 3), 128, np.uint8)
    shift = [
        flicker(grey, a, seed=5).astype(float).mean(axis=(1, 2, 3)) - 128 for a in (0.02, 0.06)
    ]
    assert np.abs(shift[0]).max() > 2
    np.testing.assert_allclose(shift[1], 3 * shift[0], atol=2.0)
    # Seeded: same seed same output, different seed different output.
    assert np.array_equal(flicker(clip, 0.1, seed=3), outs[2])
    assert not np.array_equal(flicker(clip, 0.1, seed=4), outs[2])


def test_brightness_shift_is_constant(clip):
    mid = (clip // 2 + 64).astype(np.uint8)  # 64..191: no clipping at +-40
    for delta in (25, -40):
        diff = brightness_shift(mid, delta).astype(int) - mid.astype(int)
        assert (diff == delta).all()
    sat = np.full((2, 4, 4, 3), 250, np.uint8)
    assert (brightness_shift(sat, 20) == 255).all()
    assert (brightness_shift(sat, -300) == 0).all()


def test_duplicate_frames_nested(clip):
    t = len(clip)
    assert all((clip[1:] != clip[:-1]).any(axis=(1, 2, 3)))  # every frame distinct
    prev: set[int] = set()
    for k in range(t - 1):
        out = duplicate_frames(clip, k)
        assert out.shape == clip.shape
        same = {i for i in range(1, t) if np.array_equal(out[i], out[i - 1])}
        assert len(same) == k
        assert prev <= same
        assert np.array_equal(out[0], clip[0]) and np.array_equal(out[-1], clip[-1])
        untouched = [i for i in range(t) if i not in same]
        assert np.array_equal(out[untouched], clip[untouched])
        prev = same
    with pytest.raises(ValueError):
        duplicate_frames(clip, t - 1)


def test_drop_frames_nested_and_spread(clip):
    t = len(clip)
    keys = [f.tobytes() for f in clip]
    prev = set(range(t))
    for k in range(t - 1):
        out = drop_frames(clip, k)
        assert len(out) == t - k
        kept = [keys.index(f.tobytes()) for f in out]
        assert kept == sorted(kept) and kept[0] == 0 and kept[-1] == t - 1
        assert set(kept) <= prev
        prev = set(kept)
    # Spread: two drops from 16 frames are not neighbours and avoid the ends.
    pos = nested_positions(16, 2)
    assert np.diff(pos).min() > 2 and pos.min() > 2 and pos.max() < 13


def test_distortions_reject_non_video():
    with pytest.raises(VideoInputError, match="uint8"):
        flicker(np.zeros((2, 4, 4, 3), np.float32), 0.1)


def test_jittered_trajectory():
    line = jittered_trajectory(12, 1.5, 30.0, 0.0)
    t = np.arange(12)[:, None]
    np.testing.assert_allclose(line, t * 1.5 * np.array([np.cos(np.pi / 6), -np.sin(np.pi / 6)]))
    a1 = jittered_trajectory(12, 1.5, 30.0, 1.0, seed=7)
    a3 = jittered_trajectory(12, 1.5, 30.0, 3.0, seed=7)
    assert np.array_equal(a1[0], [0.0, 0.0]) and np.array_equal(a3[0], [0.0, 0.0])
    np.testing.assert_allclose(a3 - line, 3 * (a1 - line), atol=1e-12)
    assert np.abs(a1 - line)[1:].min() > 0
    # A straight trajectory renders the same video as the constant pan; a jittered one has
    # the jitter in its ground-truth flow.
    straight = make_video("pan", frames=12, size=(32, 32), seed=3, trajectory=line)
    pan = make_video("pan", frames=12, size=(32, 32), seed=3, speed=1.5, direction_deg=30.0)
    assert np.array_equal(straight.frames, pan.frames)
    jit = make_video("pan", frames=12, size=(32, 32), seed=3, trajectory=a1)
    np.testing.assert_allclose(jit.flow[:, 10, 10], np.diff(a1, axis=0), atol=1e-5)
    assert _warp_error(jit, jit.flow) < 2.0
