"""Evaluation: one unit per generated video (``evaluate/<arm>/<sample>_seed<seed>.json``), its
condition image and its ground truth, trimmed to the video's length, as reference. Which
metrics run, and which are unavailable for want of weights, is settled before any compute."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from bench.run_cache import Unit, unit_key
from bench.run_config import EvaluateSettings
from bench.stages.context import Context, run_units
from bench.stages.generate import generate_units
from metrics.atomic import atomic_path


@dataclass(frozen=True)
class MetricPlan:
    """The metrics scored per video, those unavailable (name -> why and how to fix), and what
    the pretrained parts resolved to (flow backend, network weights checksums)."""

    names: list[str]
    unavailable: dict[str, str]
    resolved: dict[str, str]


def plan_metrics(settings: EvaluateSettings) -> MetricPlan:
    """Resolve flow and network weights the way ``metrics.Evaluator`` will, without loading
    any network; an explicit RAFT without weights is an error here, as in ``bench eval``."""
    from bench.run_checks import metric_names
    from metrics.errors import WeightsNotFoundError
    from metrics.evaluator import METRICS
    from metrics.weights import resolve

    names = metric_names(settings.metrics)
    infos = {name: METRICS.get(name).info for name in names}
    weights = {
        "clip": ("clip_vit_b32", settings.clip_weights),
        "lpips": (f"lpips_{settings.lpips_net}", ""),
    }
    resolved, unavailable = {}, {}
    for backbone in sorted({info.backbone for info in infos.values()} - {None}):
        try:
            resolved[backbone] = resolve(weights[backbone][0], weights[backbone][1] or None).sha256
        except WeightsNotFoundError as err:
            if settings.allow_random_weights:
                resolved[backbone] = "random init"
                continue
            unavailable.update({n: str(err) for n, i in infos.items() if i.backbone == backbone})
    if any(info.needs_flow for info in infos.values()):
        resolved["flow"] = _flow(settings, resolve, WeightsNotFoundError)
    return MetricPlan(names, unavailable, resolved)


def _flow(settings: EvaluateSettings, resolve, missing) -> str:
    if settings.flow == "dis":
        return "dis"
    model = "raft_large" if settings.flow == "auto" else settings.flow
    try:
        return f"{model} {resolve(model, settings.flow_weights or None).sha256}"
    except missing:
        from metrics.weights import named_by_user

        if settings.flow == "auto" and not named_by_user(model, settings.flow_weights):
            return "dis"  # as create_flow_backend: never past a file the user named
        if settings.allow_random_weights:
            return f"{model} random init"
        raise


def evaluate_units(ctx: Context, plan: MetricPlan) -> list[Unit]:
    settings = {k: v for k, v in asdict(ctx.config.evaluate).items() if k != "metrics"}
    metrics = {"names": plan.names, "unavailable": sorted(plan.unavailable), **plan.resolved}
    units = []
    for video in generate_units(ctx):
        generated = ctx.upstream(video.record)
        condition_unit = video.data["condition_unit"]
        condition = ctx.upstream(condition_unit.record)
        key = unit_key(
            "evaluate", settings, metrics, generated["key"], generated["outputs"], condition["key"]
        )
        image, truth = condition_unit.outputs  # the condition and its real continuation
        name = video.outputs[0].stem
        folder = ctx.path("evaluate", video.arm)
        units.append(
            Unit(
                "evaluate",
                video.name,
                video.arm,
                key,
                folder / f".{name}.done.json",
                (folder / f"{name}.json",),
                {**video.data, "video": video.outputs[0], "truth": truth, "condition": image},
            )
        )
    return units


def run(ctx: Context, plan: MetricPlan) -> list[Unit]:
    units = evaluate_units(ctx, plan)
    run_units(ctx, "evaluate", units, Scorer(ctx, plan))
    return units


class Scorer:
    """Scores one unit's video; the Evaluator (networks, flow backend) is built on first use."""

    def __init__(self, ctx: Context, plan: MetricPlan):
        self.ctx, self.plan, self.evaluator = ctx, plan, None

    def __call__(self, unit: Unit) -> dict:
        from metrics.video_io import Video, read_video

        if self.evaluator is None:
            self.evaluator = self._evaluator()
        sample = unit.data["sample"]
        video = read_video(unit.data["video"])
        condition = read_video(unit.data["condition"]).frames[0]
        truth = read_video(unit.data["truth"])
        reference = Video(truth.frames[: video.num_frames], truth.fps, truth.source)
        result = self.evaluator(video, condition=condition, reference=reference)
        payload = {
            "arm": unit.arm,
            "sample": sample,
            "seed": unit.data["seed"],
            "video": unit.data["video"].name,
            "metrics": self.evaluator.names,
            "frames": result.num_frames,
            "height": result.height,
            "width": result.width,
            "fps": result.fps,
            "scalars": result.scalars,
            "series": {k: [float(v) for v in values] for k, values in result.series.items()},
            "errors": result.errors,
            "unavailable": result.unavailable,
            "notes": list(result.notes),
            "provenance": result.provenance,
        }
        with atomic_path(unit.outputs[0]) as tmp:
            tmp.write_text(json.dumps(payload))
        return {}

    def _evaluator(self):
        from metrics import Evaluator

        settings = self.ctx.config.evaluate
        return Evaluator(
            self.plan.names,
            flow=settings.flow,
            device=self.ctx.shard.device(settings.device),
            flow_weights=settings.flow_weights or None,
            allow_random_weights=settings.allow_random_weights,
            flow_batch_size=settings.batch_size,
            clip_weights=settings.clip_weights or None,
            clip_model=settings.clip_model,
            lpips_net=settings.lpips_net,
            with_reference=True,
        )
