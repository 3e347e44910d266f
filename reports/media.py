"""Frame strips (one condition, every arm, a few frames side by side) and animated previews
(every arm playing in step), from decoded uint8 [T, H, W, 3] frames."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from reports.figures import STYLE, new_figure

GAP = 2  # pixels between tiles
EMPTY = 225  # grey of a tile past an arm's last frame
STRIP_MAX, PREVIEW_HEIGHT = 192, 128  # tile heights: large videos shrink, previews of small
# ones grow, so a 512 x 512 run gives a report of the same size as the tiny model's


def frame_indices(length: int, base_length: int | None, count: int = 6) -> list[int]:
    """Frames worth showing: the first, the last inside L and the first beyond it (where
    extension starts), then evenly spread to the end."""
    if base_length and 1 < base_length < length:
        spread = np.linspace(base_length, length - 1, max(count - 2, 2))
        picks = [0, base_length - 1, *spread]
    else:
        picks = np.linspace(0, length - 1, min(count, length))
    return sorted(set(np.rint(picks).astype(int).tolist()))


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` resized to ``height`` x ``width`` when it differs: nearest neighbour when
    enlarging (pixels stay visible), antialiased bilinear when shrinking."""
    if image.shape[:2] == (height, width):
        return image
    enlarge = height > image.shape[0]
    resample = Image.Resampling.NEAREST if enlarge else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def tile_shape(frames: dict[str, np.ndarray], height: int) -> tuple[int, int]:
    """Tiles ``height`` pixels high with the videos' aspect ratio."""
    h, w = next(iter(frames.values())).shape[1:3]
    return height, max(1, round(w * height / h))


def strip_chart(
    frames: dict[str, np.ndarray], condition: np.ndarray | None, indices: list[int], title: str
) -> Figure:
    """Rows: arms; columns: the condition image, then ``indices`` (grey past an arm's end)."""
    height, width = tile_shape(frames, min(next(iter(frames.values())).shape[1], STRIP_MAX))
    lead = [] if condition is None else [fit(condition, height, width)]
    cols = len(lead) + len(indices)
    mosaic = np.full(
        (len(frames) * (height + GAP) - GAP, cols * (width + GAP) - GAP, 3), 255, np.uint8
    )
    for r, video in enumerate(frames.values()):
        tiles = lead + [
            fit(video[i], height, width) if i < len(video) else np.full((height, width, 3), EMPTY)
            for i in indices
        ]
        for c, tile in enumerate(tiles):
            y, x = r * (height + GAP), c * (width + GAP)
            mosaic[y : y + height, x : x + width] = tile
    labels = ["condition"] * len(lead) + [f"frame {i}" for i in indices]
    with rc_context(STYLE):
        fig = new_figure(1.4 + 0.9 * cols, 0.5 + 0.9 * len(frames))
        ax = fig.add_subplot()
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_xticks([c * (width + GAP) + width / 2 for c in range(cols)], labels, fontsize=7)
        ax.set_yticks([r * (height + GAP) + height / 2 for r in range(len(frames))], list(frames))
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title)
    return fig


def preview_gif(frames: dict[str, np.ndarray], fps: float, base_length: int | None) -> bytes:
    """An animated GIF of every arm side by side, labelled, looping; an arm shorter than the
    others holds its last frame, faded, with the frame counter marking frames past L."""
    height, width = tile_shape(frames, PREVIEW_HEIGHT)
    band = 14
    length = max(len(video) for video in frames.values())
    images = []
    for t in range(length):
        canvas = Image.new("RGB", (len(frames) * (width + GAP) - GAP, height + 2 * band), "white")
        draw = ImageDraw.Draw(canvas)
        for a, (arm, video) in enumerate(frames.items()):
            frame = fit(video[min(t, len(video) - 1)], height, width)
            if t >= len(video):
                frame = (frame * 0.35 + 255 * 0.65).astype(np.uint8)
            x = a * (width + GAP)
            canvas.paste(Image.fromarray(frame), (x, band))
            draw.text((x + 2, 1), arm, fill="black")
        beyond = " (beyond L)" if base_length and t >= base_length else ""
        draw.text((2, band + height + 1), f"frame {t}{beyond}", fill="black")
        # each frame its own 256-colour palette, by fast octree: 10x faster than Pillow's
        # median cut (2.6 s for 6 arms x 32 frames here), 3.1 grey levels off against 2.7
        images.append(canvas.quantize(256, method=Image.Quantize.FASTOCTREE))
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return buffer.getvalue()
