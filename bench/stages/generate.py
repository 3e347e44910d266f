"""Generation: one unit per arm x condition x seed (``generate/<arm>/<sample>_seed<seed>.mp4``),
``svd`` at the base length, the others at the extended length; then each arm's
``manifest.json`` in ``variants.generate.generate_arm``'s format, merged from the units."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from bench.run_cache import Unit, read_record, unit_key
from bench.run_config import RunConfig
from bench.stages.context import Context, run_units
from bench.stages.inputs import condition_units
from bench.stages.tune import tune_units, tuned_unet


def generation_config(config: RunConfig, arm: str):
    from variants import get_variant
    from variants.generate import GenerationConfig

    model = config.model
    settings = {k: v for k, v in asdict(config.generation).items() if k != "seeds"}
    frames = model.extended_length if get_variant(arm).extended else model.base_length
    return GenerationConfig(
        frames=frames, height=model.size, width=model.size, dtype=model.dtype, **settings
    )


def arm_source(ctx: Context, arm: str, tuned: Unit | None) -> dict:
    """What an arm's UNet comes from: its tuning unit, or the base model and its definition."""
    from variants import get_variant

    variant = get_variant(arm)
    if variant.post_tuned:
        record = ctx.upstream(tuned.record)
        return {"tune": record["key"], "outputs": record["outputs"]}
    return {"model": ctx.model_key, "variant": asdict(variant)}


def generate_units(ctx: Context) -> list[Unit]:
    """Every video to generate; ``data`` holds what it is made from as the producing stages
    name it: the condition's unit (its image, and its continuation for evaluation) and the
    tuned UNet's folder."""
    conditions = [(unit, ctx.upstream(unit.record)["key"]) for unit in condition_units(ctx)]
    tuned = {unit.arm: unit for unit in tune_units(ctx)}
    units = []
    for arm in ctx.config.arms:
        source = arm_source(ctx, arm, tuned.get(arm))
        unet = tuned_unet(tuned[arm]) if arm in tuned else None
        settings = asdict(generation_config(ctx.config, arm))
        for condition, condition_key in conditions:
            for seed in ctx.config.generation.seeds:
                name = f"{condition.name}_seed{seed}"
                key = unit_key("generate", ctx.model_key, source, settings, condition_key, seed)
                folder = ctx.path("generate", arm)
                data = {"sample": condition.name, "seed": seed, "unet": unet,
                        "condition_unit": condition}
                units.append(
                    Unit(
                        "generate",
                        f"{arm}/{name}",
                        arm,
                        key,
                        folder / f".{name}.done.json",
                        (folder / f"{name}.mp4",),
                        data,
                    )
                )
    return units


class ArmPipelines:
    """The pipeline of the arm being generated, rebuilt when the arm changes."""

    def __init__(self, ctx: Context):
        self.ctx, self.arm, self.pipe, self.weights = ctx, None, None, {}

    def get(self, unit: Unit):
        arm = unit.arm
        if arm != self.arm:
            from variants import ExSVDUNet, get_variant
            from variants.generate import state_sha256, with_unet

            model = self.ctx.config.model
            base = self.ctx.pipeline(model.dtype)
            if unit.data["unet"] is not None:
                unet = ExSVDUNet.from_pretrained(unit.data["unet"])
            else:
                unet = get_variant(arm).build(
                    base.unet,
                    base_length=model.base_length,
                    table_size=model.table_size,
                    bounce_low=model.bounce_low,
                )
            config = generation_config(self.ctx.config, arm)
            self.pipe = with_unet(base, unet.eval(), config, self.ctx.shard.device(model.device))
            self.weights = {
                name: state_sha256(getattr(self.pipe, name))
                for name in ("unet", "vae", "image_encoder")
            }
            self.arm = arm
        return self.pipe, self.weights


def run(ctx: Context) -> list[Unit]:
    units = generate_units(ctx)
    pipelines = ArmPipelines(ctx)
    run_units(ctx, "generate", units, lambda unit: generate_video(ctx, pipelines, unit))
    if ctx.shard.is_main:
        write_manifests(ctx, units)
    ctx.shard.barrier()
    return units


def generate_video(ctx: Context, pipelines: ArmPipelines, unit: Unit) -> dict:
    from PIL import Image

    from metrics.video_io import write_video
    from variants.generate import generate, sha256_bytes

    pipe, weights = pipelines.get(unit)
    sample, seed = unit.data["sample"], unit.data["seed"]
    image = unit.data["condition_unit"].outputs[0]
    condition = np.asarray(Image.open(image).convert("RGB"))
    config = generation_config(ctx.config, unit.arm)
    frames = generate(pipe, condition, seed, config)
    path = write_video(unit.outputs[0], frames, config.output_fps, lossless=True)
    entry = {
        "arm": unit.arm,
        "condition": sample,
        "condition_sha256": sha256_bytes(condition.tobytes()),
        "seed": seed,
        "file": path.name,
        "video_sha256": sha256_bytes(path.read_bytes()),
    }
    return {"entry": entry, "weights_sha256": weights, "generation": asdict(config)}


def write_manifests(ctx: Context, units: list[Unit]) -> None:
    from variants.generate import write_json

    for arm in ctx.config.arms:
        records = [ctx.upstream(unit.record) for unit in units if unit.arm == arm]
        manifest = {
            "arm": arm,
            "generation": records[0]["generation"],
            "weights_sha256": records[0]["weights_sha256"],
            "videos": [record["entry"] for record in records],
        }
        path = ctx.path("generate", arm, "manifest.json")
        if read_record(path) != manifest:
            write_json(path, manifest)
