"""The embedded tiny model's training data: seeded synthetic clips with varied camera motion.

Clip ``i`` of a split is fully determined by ``(seed, split, i)``: its motion kind, speed,
direction and texture. Every clip's camera pans at 2-4 px/frame in a random direction, and all
but pure pans add their own motion on top (zoom in or out, rotation either way, moving sprites):
a mix where some clips barely move teaches a small model to copy its condition frame (README,
*The embedded tiny model*). Textures are twice as coarse as the generator's default (every
wavelength and the smallest blob size doubled): on the finer ones, a pan of 2-4 px/frame is a
sharp sub-cell shift of the 8x8 latents, and the UNet's pans kept less of their direction. The
held-out split draws from a disjoint seed range, so no held-out texture or motion is ever
trained on. Post-tuning uses the same kinds, speeds and textures at the extended length (a
zoom-out's texture is widened over the whole clip, so its first frame differs with the clip's
length).
"""

from __future__ import annotations

import numpy as np

from metrics.synthetic import make_video, velocity

KINDS = ("pan", "zoom", "rotate", "sprites")
SPLITS = {"train": 0, "held-out": 1}
TEXTURE_SCALE = 2.0  # texture wavelengths (and the smallest blobs), against ``make_video``'s


def clip_params(index: int, *, seed: int = 0, split: str = "train") -> dict:
    """``make_video`` keyword arguments of clip ``index`` of a split (frames and size aside)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    kind = KINDS[index % len(KINDS)]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return {
        "kind": kind,
        "seed": int(rng.integers(2**31)),
        "speed": float(rng.uniform(2.0, 4.0)),
        "direction_deg": float(rng.uniform(0.0, 360.0)),
        "zoom": float(1.03**sign),
        "rotation_deg": sign * 2.0,
        "texture_scale": TEXTURE_SCALE,
    }


def render_clip(params: dict, *, frames: int, size: int) -> np.ndarray:
    """uint8 clip [T, size, size, 3]: ``make_video`` with the camera pan under every kind."""
    pan = np.arange(frames)[:, None] * velocity(params["speed"], params["direction_deg"])
    return make_video(frames=frames, size=(size, size), trajectory=pan, **params).frames


def render_clips(
    indices, *, frames: int, size: int, seed: int = 0, split: str = "train"
) -> np.ndarray:
    """uint8 clips [N, T, size, size, 3] for the given clip indices of a split."""
    return np.stack(
        [
            render_clip(clip_params(i, seed=seed, split=split), frames=frames, size=size)
            for i in indices
        ]
    )


def held_out_set(indices, *, frames: int, size: int = 64) -> tuple[np.ndarray, list[str]]:
    """uint8 held-out clips [N, T, size, size, 3] and their motion kinds, for learning reports."""
    clips = render_clips(indices, frames=frames, size=size, split="held-out")
    return clips, [clip_params(i, split="held-out")["kind"] for i in indices]
