"""Write the bundled sample videos: ``python samples/make_samples.py`` (seeded, reproducible).

Synthetic clips with known motion, 128x128, 24 frames at 8 fps, so that ``python -m bench eval
samples`` shows what each metric rewards and punishes: smooth camera motions, moving sprites, a
frozen video (perfect flicker and smoothness, zero motion), injected flicker and jitter.
"""

from __future__ import annotations

from pathlib import Path

from metrics.distortions import flicker, jittered_trajectory
from metrics.synthetic import make_video
from metrics.video_io import write_video

FRAMES, SIZE, FPS = 24, (128, 128), 8.0


def main(out: Path = Path(__file__).parent) -> None:
    clips = {
        "pan": make_video("pan", frames=FRAMES, size=SIZE, seed=1, speed=1.5, direction_deg=20),
        "zoom": make_video("zoom", frames=FRAMES, size=SIZE, seed=2),
        "rotate": make_video("rotate", frames=FRAMES, size=SIZE, seed=3),
        "sprites": make_video("sprites", frames=FRAMES, size=SIZE, seed=4),
        "static": make_video("static", frames=FRAMES, size=SIZE, seed=5),
        "pan_jitter": make_video("pan", frames=FRAMES, size=SIZE, seed=1, trajectory=(
            jittered_trajectory(FRAMES, 1.5, 20, amount=1.0, seed=0))),
    }
    frames = {name: clip.frames for name, clip in clips.items()}
    frames["pan_flicker"] = flicker(clips["pan"].frames, 0.05, seed=0)
    for name, video in frames.items():
        print(write_video(out / f"{name}.mp4", video, FPS))


if __name__ == "__main__":
    main()
