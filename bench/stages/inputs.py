"""The run's inputs: the base model (located and fingerprinted) and the conditions, each a
condition image with its ground-truth continuation (``conditions/<sample>.png`` / ``.mp4``)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.run_cache import Unit, unit_key
from bench.run_config import ModelSettings
from bench.stages.context import Context, run_units
from metrics.errors import BenchError


def base_folder(model: ModelSettings) -> Path:
    """The base pipeline's folder: the embedded tiny model, a folder, or a Hugging Face id in
    the local cache (never downloaded)."""
    if model.base == "tiny":
        from bench.run_checks import TINY_FIX
        from variants.tiny import SHIPPED

        if not SHIPPED.is_dir():
            raise BenchError(SHIPPED, "the embedded tiny model is missing", TINY_FIX)
        return SHIPPED
    if Path(model.base).is_dir():
        return Path(model.base)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model.base, local_files_only=True))
    except Exception:  # not in the cache, or not a valid repo id
        raise BenchError(
            model.base,
            "base SVD pipeline not found as a folder or in the Hugging Face cache",
            f"run 'huggingface-cli download {model.base}' where the hub is reachable, or set "
            "model.base to the folder of a downloaded copy",
        ) from None


def model_key(ctx: Context, leave_out: tuple[str, ...] = ()) -> str:
    """Everything about the base model that the arms inherit: its files and how arms are built
    (base length, PE table size, bounce floor), plus where and in what precision it runs
    (``leave_out``: settings a stage does not use, e.g. post-tuning always runs in float32)."""
    model = ctx.config.model
    folder = base_folder(model)
    files = ctx.checksums.tree(folder, folder)
    settings = {k: v for k, v in asdict(model).items() if k not in ("base", *leave_out)}
    return unit_key("model", files, settings)


def samples(ctx: Context) -> dict[str, dict]:
    """Sample name -> what makes its condition: a rendered kind and seed, or a video file."""
    conditions = ctx.config.conditions
    if conditions.source == "synthetic":
        kinds = conditions.kinds
        return {
            f"{kinds[i % len(kinds)]}-{i:02d}": {
                "kind": kinds[i % len(kinds)],
                "seed": conditions.seed + i,
                "texture_scale": conditions.texture_scale,
            }
            for i in range(conditions.count)
        }
    from metrics.video_io import find_videos

    found: dict[str, dict] = {}
    for path in find_videos(conditions.source):
        name = path.stem if path.is_file() else path.name
        if name in found:
            raise BenchError(path, f"a second video named '{name}'", "give each video its own name")
        found[name] = {"video": str(path)}
    return found


def condition_units(ctx: Context) -> list[Unit]:
    model = ctx.config.model
    units = []
    for sample, source in samples(ctx).items():
        identity = source
        if "video" in source:  # its content, not where it lies (a moved folder is the same)
            path = Path(source["video"])
            content = ctx.checksums.tree(path, path) if path.is_dir() else ctx.checksums.file(path)
            source = {**source, "sha256": content}
            identity = {"sha256": content}
        key = unit_key(
            "condition", identity, model.extended_length, model.size,
            ctx.config.generation.output_fps,
        )
        units.append(
            Unit(
                "conditions",
                sample,
                "",
                key,
                ctx.path("conditions", f".{sample}.done.json"),
                (ctx.path("conditions", f"{sample}.png"), ctx.path("conditions", f"{sample}.mp4")),
                {"sample": sample, **source},
            )
        )
    return units


def run(ctx: Context) -> list[Unit]:
    source = ctx.config.conditions.source
    if source != "synthetic" and ctx.shard.is_main:
        from metrics.video_io import skipped_note

        if skipped := skipped_note(source):
            print(f"note: conditions.source {source}: {skipped}", file=sys.stderr)
    units = condition_units(ctx)
    run_units(ctx, "conditions", units, lambda unit: write_condition(ctx, unit))
    return units


def write_condition(ctx: Context, unit: Unit) -> dict:
    from PIL import Image

    from metrics.atomic import atomic_path
    from metrics.video_io import write_video

    model = ctx.config.model
    frames = clip_of(unit.data, model.extended_length, model.size)
    png, mp4 = unit.outputs
    with atomic_path(png) as tmp:
        Image.fromarray(frames[0]).save(tmp)
    write_video(mp4, frames, ctx.config.generation.output_fps, lossless=True)
    return {}


def clip_of(source: dict, frames: int, size: int) -> np.ndarray:
    """uint8 [frames, size, size, 3]: rendered, or a video's first frames centre-cropped to a
    square and resized."""
    if "kind" in source:
        from metrics.synthetic import make_video

        return make_video(
            source["kind"], frames=frames, size=(size, size), seed=source["seed"],
            texture_scale=source["texture_scale"],
        ).frames
    from metrics.evaluator import resize_frames
    from metrics.video_io import read_video

    video = read_video(source["video"])
    if video.num_frames < frames:
        raise BenchError(
            source["video"],
            f"{video.num_frames} frames, fewer than extended_length {frames}",
            "remove it from the conditions folder or lower model.extended_length",
        )
    side = min(video.height, video.width)
    top, left = (video.height - side) // 2, (video.width - side) // 2
    square = video.frames[:frames, top : top + side, left : left + side]
    return resize_frames(square, (size, size)) if side != size else np.ascontiguousarray(square)
