"""Synthetic videos with exact ground-truth optical flow.

A video is an analytic texture on an infinite canvas seen through a moving camera, plus optional
opaque, hard-edged disc sprites that translate in frame space on top of it. Because textures are
analytic functions of continuous canvas coordinates, every frame samples them exactly (no
interpolation), so the forward flow of each consecutive pair is known in closed form.

Conventions (OpenCV / torchvision): pixel ``(row, col)`` has its centre at ``x = col``,
``y = row``; ``flow[..., 0]`` is dx (columns), ``flow[..., 1]`` is dy (rows); ``size`` is
``(H, W)``. Angles are in degrees, counter-clockwise *on screen* (y points down), as in
``cv2.getRotationMatrix2D``: ``direction_deg=90`` moves content up, ``rotation_deg > 0`` turns
it counter-clockwise. Velocities are the apparent motion of the content in frame pixels per frame,
so a pan's flow equals its velocity.

Temporal jitter (or any non-constant camera speed) is rendered, not post-processed: build a
per-frame path with ``metrics.distortions.jittered_trajectory`` and pass it as
``make_video("pan", trajectory=path)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

KINDS = ("pan", "zoom", "rotate", "sprites", "static")

MIN_WAVELENGTH = 6.0  # px; keeps texture frequencies below 1/6 cycle per pixel in every frame
MAX_WAVELENGTH = 48.0
EDGE_MARGIN = 2.0  # px around sprite outlines marked occluded (anti-aliased, mixed pixels)
_SUBSAMPLES = np.array([(-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)])
_CHUNK = 1 << 17  # texture points evaluated at once (bounds temporary memory)


class Texture:
    """Random analytic RGB texture: oriented sinusoids plus soft Gaussian blobs on a base colour.

    ``extent`` = ``(x0, y0, x1, y1)`` is the canvas box where blob centres fall; ``scale``
    multiplies every wavelength and the smallest blob size (blobs are sized against the canvas
    extent; use > 1 when the view will be minified).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        extent: tuple[float, float, float, float] = (0.0, 0.0, 128.0, 128.0),
        scale: float = 1.0,
        waves: int = 12,
    ):
        lo, hi = math.log(MIN_WAVELENGTH * 1.05), math.log(MAX_WAVELENGTH)
        wavelength = np.exp(rng.uniform(lo, hi, waves)) * scale
        theta = rng.uniform(0.0, 2.0 * np.pi, waves)
        # Angular frequency vectors [K, 2]; phase = k . p + phi.
        unit = np.stack([np.cos(theta), np.sin(theta)], 1)
        self.freqs = (2.0 * np.pi / wavelength)[:, None] * unit
        self.phases = rng.uniform(0.0, 2.0 * np.pi, waves)
        # Mostly luminance (shared across channels) with some colour; total std ~0.15 per channel.
        # Long waves weigh more (pink-ish spectrum).
        lum = rng.standard_normal((waves, 1))
        col = rng.standard_normal((waves, 3))
        weight = np.sqrt(wavelength / wavelength.mean())[:, None]
        self.amps = 0.15 * math.sqrt(2.0 / waves) * weight * (lum + 0.6 * col) / math.sqrt(1.36)
        self.base = rng.uniform(0.3, 0.7, 3)

        x0, y0, x1, y1 = extent
        nb = int(rng.integers(2, 6))
        diag = math.hypot(x1 - x0, y1 - y0)
        self.blob_centres = np.stack([rng.uniform(x0, x1, nb), rng.uniform(y0, y1, nb)], 1)
        self.blob_sigmas = np.maximum(rng.uniform(0.05, 0.2, nb) * diag, MIN_WAVELENGTH * scale)
        self.blob_colours = rng.uniform(0.0, 1.0, (nb, 3))
        self.blob_alphas = rng.uniform(0.5, 0.9, nb)

    def texture(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Colour in [0, 1] at canvas coordinates ``x``, ``y`` (broadcast): float32 [..., 3]."""
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        pts = np.stack([x.ravel(), y.ravel()], 1)
        out = np.empty((len(pts), 3), np.float32)
        for s in range(0, len(pts), _CHUNK):
            p = pts[s : s + _CHUNK]
            phase = p @ self.freqs.T
            phase += self.phases
            val = self.base + np.cos(phase, out=phase) @ self.amps
            for m, sig, c, a in zip(
                self.blob_centres,
                self.blob_sigmas,
                self.blob_colours,
                self.blob_alphas,
                strict=True,
            ):
                w = a * np.exp(-((p - m) ** 2).sum(1) / (2.0 * sig * sig))
                val += w[:, None] * (c - val)
            out[s : s + _CHUNK] = np.clip(val, 0.0, 1.0)
        return out.reshape(*x.shape, 3)

    __call__ = texture

    def texture_grid(
        self, lin: np.ndarray, off: np.ndarray, xs: np.ndarray, ys: np.ndarray
    ) -> np.ndarray:
        """``texture`` at canvas points ``lin @ (x, y) + off`` for x in ``xs``, y in ``ys``.

        Same values as :meth:`texture` on the mesh (up to float rounding), float32
        [len(ys), len(xs), 3], but separable and much faster when ``lin`` is a similarity
        (scaled rotation), which every camera here is; other maps fall back to ``texture``.
        """
        lin, off = np.asarray(lin, np.float64), np.asarray(off, np.float64)
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        s2 = abs(np.linalg.det(lin))
        if not np.allclose(lin.T @ lin, s2 * np.eye(2), rtol=0.0, atol=1e-12 * max(s2, 1.0)):
            gx, gy = np.meshgrid(xs, ys)
            return self.texture(
                lin[0, 0] * gx + lin[0, 1] * gy + off[0], lin[1, 0] * gx + lin[1, 1] * gy + off[1]
            )
        # k . (L p + b) + phi = alpha x + beta y + gamma; cos(u + v) = cos u cos v - sin u sin v.
        kk = self.freqs @ lin  # [K, 2] = (alpha, beta)
        gamma = self.freqs @ off + self.phases
        ux = np.outer(kk[:, 0], xs)  # [K, W]
        vy = np.outer(ys, kk[:, 1]) + gamma  # [H, K]
        left = np.concatenate([np.cos(vy), -np.sin(vy)], 1)  # [H, 2K]
        right = np.concatenate([np.cos(ux), np.sin(ux)], 0)  # [2K, W]
        amps2 = np.concatenate([self.amps, self.amps], 0)  # [2K, 3]
        val = np.einsum("hk,kc,kw->hwc", left, amps2, right, optimize=True) + self.base
        # Under a similarity |L p + b - m|^2 = s^2 |p - L^-1 (m - b)|^2: separable Gaussians.
        inv = np.linalg.inv(lin)
        for m, sig, c, a in zip(
            self.blob_centres, self.blob_sigmas, self.blob_colours, self.blob_alphas, strict=True
        ):
            px, py = inv @ (m - off)
            k = s2 / (2.0 * sig * sig)
            w = a * np.outer(np.exp(-k * (ys - py) ** 2), np.exp(-k * (xs - px) ** 2))
            val += w[..., None] * (c - val)
        return np.clip(val, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Sprite:
    """Opaque hard-edged disc with its own texture, centred at ``centre0 + t * velocity``."""

    centre0: tuple[float, float]
    velocity: tuple[float, float]
    radius: float
    texture: Texture = field(repr=False, compare=False)

    def centre(self, t: float) -> np.ndarray:
        return np.asarray(self.centre0) + t * np.asarray(self.velocity)


@dataclass(frozen=True)
class SyntheticVideo:
    """Rendered frames with exact forward flow; ``make_video(**params)`` regenerates it."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    flow: np.ndarray  # float32 [T-1, H, W, 2] forward flow, exact
    occluded: np.ndarray  # bool [T-1, H, W]
    kind: str
    params: dict  # everything needed to regenerate (JSON-serialisable)
    sprite_info: tuple[dict, ...] = ()  # per sprite: centre0 [x, y], velocity [vx, vy], radius


def velocity(speed: float, direction_deg: float) -> np.ndarray:
    """Frame-space velocity ``(vx, vy)`` for a speed and an on-screen counter-clockwise angle."""
    a = math.radians(direction_deg)
    return np.array([speed * math.cos(a), -speed * math.sin(a)])


def _rotation(deg: float) -> np.ndarray:
    """Linear map turning content ``deg`` counter-clockwise on screen (y down)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s], [-s, c]])


class _Camera:
    """Per-frame affine map: frame pixel x -> canvas q = c + M_t^{-1} (x - d_t - c)."""

    def __init__(self, centre: np.ndarray, mats: np.ndarray, offsets: np.ndarray):
        self.centre, self.mats, self.offsets = centre, mats, offsets
        self.inv = np.linalg.inv(mats)

    def affine(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(L, b)`` with canvas q = L x + b for frame t."""
        lin = self.inv[t]
        return lin, self.centre - lin @ (self.offsets[t] + self.centre)

    def forward(self, t: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where background content at frame-t pixel (x, y) lies in frame t+1."""
        (a, b), (c, d) = self.mats[t + 1] @ self.inv[t]
        u = x - self.offsets[t, 0] - self.centre[0]
        v = y - self.offsets[t, 1] - self.centre[1]
        cx, cy = self.centre + self.offsets[t + 1]
        return cx + a * u + b * v, cy + c * u + d * v


def _labels(
    x: np.ndarray, y: np.ndarray, t: int, sprites: list[Sprite]
) -> tuple[np.ndarray, np.ndarray]:
    """Topmost layer at points (-1 = background) and whether they lie near any sprite outline."""
    label = np.full(x.shape, -1, np.int64)
    edge = np.zeros(x.shape, bool)
    for i, sp in enumerate(sprites):
        cx, cy = sp.centre(t)
        r = np.hypot(x - cx, y - cy)
        label[r < sp.radius] = i
        edge |= np.abs(r - sp.radius) < EDGE_MARGIN
    return label, edge


def _render(cam: _Camera, bg: Texture, sprites: list[Sprite], t: int, h: int, w: int) -> np.ndarray:
    """Frame t as uint8 [H, W, 3]: mean of 2x2 sub-pixel samples of the layered scene."""
    lin, off = cam.affine(t)
    eye, zero = np.eye(2), np.zeros(2)
    acc = np.zeros((h, w, 3), np.float32)
    for dx, dy in _SUBSAMPLES:
        xs, ys = np.arange(w) + dx, np.arange(h) + dy
        val = bg.texture_grid(lin, off, xs, ys)
        for sp in sprites:
            cx, cy = sp.centre(t)
            c0, c1 = max(0, math.floor(cx - sp.radius)), min(w, math.ceil(cx + sp.radius) + 1)
            r0, r1 = max(0, math.floor(cy - sp.radius)), min(h, math.ceil(cy + sp.radius) + 1)
            if c0 >= c1 or r0 >= r1:
                continue
            lx, ly = xs[c0:c1] - cx, ys[r0:r1] - cy
            inside = ly[:, None] ** 2 + lx[None, :] ** 2 < sp.radius**2
            box = val[r0:r1, c0:c1]
            box[inside] = sp.texture.texture_grid(eye, zero, lx, ly)[inside]
        acc += val
    return np.rint(acc * (255.0 / len(_SUBSAMPLES))).clip(0, 255).astype(np.uint8)


def make_video(
    kind: str = "pan",
    *,
    frames: int = 16,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    speed: float = 1.5,
    direction_deg: float | None = None,
    zoom: float = 1.02,
    rotation_deg: float = 1.0,
    sprites: int = 0,
    trajectory: np.ndarray | None = None,
    texture_scale: float = 1.0,
) -> SyntheticVideo:
    """Render a synthetic video with exact forward flow and occlusion mask.

    kind: ``pan`` (content moves ``speed`` px/frame towards ``direction_deg``; None = random from
    the seed), ``zoom`` (magnify about the frame centre by ``zoom ** t``), ``rotate`` (turn by
    ``t * rotation_deg`` about the centre), ``sprites`` (slow pan at ``speed / 3`` plus
    ``sprites or 3`` moving discs), ``static`` (no motion). ``sprites > 0`` adds discs moving at
    about ``speed`` to any moving kind. ``trajectory`` [frames, 2] gives the per-frame content
    offset (frame 0 usually ``(0, 0)``) and replaces the pan of ``pan``/``sprites``, or adds a pan
    to ``zoom``/``rotate``. ``size`` is ``(H, W)``. ``texture_scale`` multiplies every texture
    wavelength and the smallest blob size (background and sprites; > 1 for smoother content); a
    zoom-out widens the texture over the whole clip, so its frame 0 depends on ``frames``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    h, w = (int(v) for v in size)
    if frames < 1 or h < 1 or w < 1:
        raise ValueError(f"need frames >= 1 and a positive size, got {frames=} {size=}")
    if zoom <= 0 or texture_scale <= 0:
        raise ValueError(f"zoom and texture_scale must be positive, got {zoom=} {texture_scale=}")
    if kind == "static" and (sprites or trajectory is not None):
        raise ValueError("kind 'static' has no motion: use sprites=0 and trajectory=None")
    n_sprites = (sprites or 3) if kind == "sprites" else int(sprites)

    rng_dir, rng_bg, rng_sp = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    random_dir = float(rng_dir.uniform(0.0, 360.0))
    direction = random_dir if direction_deg is None else float(direction_deg)

    ts = np.arange(frames, dtype=np.float64)
    if trajectory is not None:
        offsets = np.array(trajectory, dtype=np.float64)
        if offsets.shape != (frames, 2):
            raise ValueError(f"trajectory must have shape ({frames}, 2), got {offsets.shape}")
    elif kind in ("pan", "sprites"):
        pan_speed = speed if kind == "pan" else speed / 3.0
        offsets = ts[:, None] * velocity(pan_speed, direction)
    else:
        offsets = np.zeros((frames, 2))
    mats = np.broadcast_to(np.eye(2), (frames, 2, 2)).copy()
    tex_scale = float(texture_scale)
    if kind == "zoom":
        mats *= (float(zoom) ** ts)[:, None, None]
        tex_scale *= max(1.0, 1.0 / float(zoom) ** (frames - 1))  # no aliasing when zooming out
    elif kind == "rotate":
        mats = np.stack([_rotation(t * rotation_deg) for t in ts])
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    cam = _Camera(centre, mats, offsets)
    bg = Texture(rng_bg, extent=(-0.25 * w, -0.25 * h, 1.25 * w, 1.25 * h), scale=tex_scale)

    sprite_list = _sprites(rng_sp, n_sprites, frames, (h, w), speed, texture_scale)
    video = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        video[t] = _render(cam, bg, sprite_list, t, h, w)
    flow, occluded = _true_flow(cam, sprite_list, frames, h, w)

    params = {
        "kind": kind,
        "frames": int(frames),
        "size": [h, w],
        "seed": int(seed),
        "texture_scale": float(texture_scale),
        "speed": float(speed),
        "direction_deg": direction,
        "zoom": float(zoom),
        "rotation_deg": float(rotation_deg),
        "sprites": n_sprites,
        "trajectory": None if trajectory is None else offsets.tolist(),
    }
    info = tuple(
        {"centre0": list(sp.centre0), "velocity": list(sp.velocity), "radius": sp.radius}
        for sp in sprite_list
    )
    return SyntheticVideo(video, flow, occluded, kind, params, info)


def _sprites(rng: np.random.Generator, count: int, frames: int, size: tuple[int, int],
             speed: float, texture_scale: float) -> list[Sprite]:
    """``count`` textured discs of random size, moving at about ``speed`` in random directions,
    each centred in the middle half of the frame halfway through the clip."""
    h, w = size
    sprites = []
    mid = (frames - 1) / 2.0
    for _ in range(count):
        r = max(3.0, float(rng.uniform(0.08, 0.16)) * min(h, w))
        v = velocity(speed * float(rng.uniform(0.7, 1.4)), float(rng.uniform(0.0, 360.0)))
        c_mid = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
        tex = Texture(rng, extent=(-r, -r, r, r), waves=8, scale=texture_scale)
        c0 = c_mid - mid * v
        sprites.append(Sprite((float(c0[0]), float(c0[1])), (float(v[0]), float(v[1])), r, tex))
    return sprites


def _true_flow(cam: _Camera, sprites: list[Sprite], frames: int, h: int,
               w: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact forward flow [T-1, H, W, 2] (the camera's, a sprite's on it) and where it is
    occluded [T-1, H, W]: leaving the frame, changing layer, or on a sprite's edge."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np.empty((max(frames - 1, 0), h, w, 2), np.float32)
    occluded = np.empty((max(frames - 1, 0), h, w), bool)
    for t in range(frames - 1):
        dx, dy = cam.forward(t, xs, ys)
        lab, edge = _labels(xs, ys, t, sprites)
        for i, sp in enumerate(sprites):
            on = lab == i
            dx[on] = xs[on] + sp.velocity[0]
            dy[on] = ys[on] + sp.velocity[1]
        lab_next, edge_next = _labels(dx, dy, t + 1, sprites)
        outside = (dx < 0) | (dx > w - 1) | (dy < 0) | (dy > h - 1)
        occluded[t] = outside | (lab_next != lab) | edge | edge_next
        flow[t, ..., 0] = dx - xs
        flow[t, ..., 1] = dy - ys
    return flow, occluded


def make_set(
    n: int,
    *,
    frames: int = 16,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
) -> list[SyntheticVideo]:
    """Fixed mixed set: video i is ``make_video(kinds[i % len(kinds)], seed=seed + i)``."""
    if not kinds:
        raise ValueError("kinds must not be empty")
    return [
        make_video(kinds[i % len(kinds)], frames=frames, size=size, seed=seed + i) for i in range(n)
    ]
