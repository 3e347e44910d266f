"""What a ``RunConfig`` must satisfy, checked before any compute, and its resolution: budget
numbers filled in, "all" arms listed, paths made absolute, the evaluation device set."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from bench.run_config import (
    BUDGETS,
    DTYPES,
    FLOWS,
    ConditionSettings,
    EvaluateSettings,
    GenerationSettings,
    ModelSettings,
    RunConfig,
    TuneSettings,
    with_budget,
)
from bench.run_toml import Name, dotted
from metrics.errors import BenchError

TINY_FIX = "create it with 'python -m variants.tiny pretrain --out variants/weights/tiny-svd'"


def check_and_resolve(
    config: RunConfig, origins: dict[Name, str], launched: int | None = None
) -> RunConfig:
    """``config`` checked, paths resolved. ``launched``: the processes of the launch bench runs
    under (default: as accelerate launch says, $WORLD_SIZE; 1 off a launch)."""
    if launched is None:
        launched = int(os.environ.get("WORLD_SIZE") or 1)  # set by accelerate launch
    check = Checker(origins, launched)
    arms = _arms(config.arms, origins.get(("", "arms"), "arms (default)"))
    check.require(config.seed >= 0, ("", "seed"), "seed must be >= 0", "use 0, 1, ...")
    model = _model(check, config.model, arms)
    return replace(
        config,
        arms=arms,
        model=model,
        conditions=_conditions(check, config.conditions),
        tune=_tune(check, config.tune, arms, model.device),
        generation=_generation(check, config.generation),
        evaluate=_evaluate(check, config.evaluate, model),
    )


class Checker:
    """Raises one-line errors that name where a setting came from (``file:line``, a flag)."""

    def __init__(self, origins: dict[Name, str], launched: int = 1):
        self.origins = origins
        self.launched = launched

    def fail(self, name: Name, problem: str, fix: str) -> BenchError:
        where = self.origins.get(name, f"{dotted(name)} (default)")
        return BenchError(where, problem, fix)

    def require(self, ok: bool, name: Name, problem: str, fix: str) -> None:
        if not ok:
            raise self.fail(name, problem, fix)

    def choice(self, name: Name, value: str, allowed) -> None:
        problem = f"{dotted(name)} = {value!r} is not allowed"
        self.require(value in allowed, name, problem, f"use one of {', '.join(allowed)}")

    def at_least(self, settings, section: str, keys: tuple[str, ...], low: float) -> None:
        for key in keys:
            value = getattr(settings, key)
            self.require(value >= low, (section, key), f"{key} = {value} < {low}", f"use {low}+")

    def folder_or(self, name: Name, value: str, word: str) -> str:
        """``word`` itself, or an existing folder (``~`` expanded) made absolute; an empty
        value is an error, not the current directory."""
        if value == word:
            return value
        self.require(bool(value.strip()), name, f"{dotted(name)} is empty", f"'{word}' or a folder")
        folder = Path(value).expanduser()
        self.require(folder.is_dir(), name, f"{value}: no such folder", f"'{word}' or a folder")
        return str(folder.resolve())

    def file_or_empty(self, name: Name, value: str) -> str:
        if not value:
            return value
        path = Path(value).expanduser()
        self.require(path.is_file(), name, f"{value}: no such file", "check the path")
        return str(path.resolve())

    def device(self, name: Name, device: str) -> None:
        from bench.common import device_problem

        self.require(
            self.launched == 1 or not device.startswith("cuda:"),
            name,
            f"{device} under a launch of {self.launched} processes, which take one GPU each",
            "use cuda (process N runs on cuda:<its local rank>)",
        )
        problem = device_problem(device)
        self.require(problem is None, name, f"{device}: {problem}", "use cpu, cuda or cuda:N")


def _model(check: Checker, model: ModelSettings, arms: list[str]) -> ModelSettings:
    check.require(
        1 <= model.base_length < model.extended_length,
        ("model", "extended_length"),
        f"needs 1 <= base_length ({model.base_length}) < extended_length ({model.extended_length})",
        "extend past the base length",
    )
    check.require(
        model.size > 0 and model.size % 8 == 0,
        ("model", "size"),
        f"size {model.size} is not a positive multiple of the VAE factor 8",
        "use e.g. 64",
    )
    check.choice(("model", "dtype"), model.dtype, DTYPES)
    check.device(("model", "device"), model.device)
    from variants import get_variant

    if any(get_variant(arm).pe == "trainable" for arm in arms):
        check.require(
            model.extended_length <= model.table_size,
            ("model", "table_size"),
            f"table_size {model.table_size} < extended_length {model.extended_length}",
            "give the trainable PE tables a row per frame",
        )
        check.require(
            0 <= model.bounce_low < model.base_length - 1,
            ("model", "bounce_low"),
            f"bounce_low {model.bounce_low} outside [0, base_length - 1)",
            "use e.g. base_length // 2",
        )
    levels = _unet_levels(model.base)
    if levels and any(get_variant(arm).identity_conv for arm in arms):
        from variants.unet import size_fits, size_step

        step = size_step(levels)
        check.require(
            size_fits(model.size, levels),
            ("model", "size"),
            f"size {model.size} leaves the identity conv under 2 latents at the UNet's deepest "
            f"level ({levels} levels)",
            f"use a multiple of {step}, at least {2 * step}",
        )
    if model.base == "tiny":
        from variants.tiny import SHIPPED

        problem = f"the embedded tiny model is missing ({SHIPPED})"
        check.require(SHIPPED.is_dir(), ("model", "base"), problem, TINY_FIX)
    elif Path(model.base).expanduser().exists():
        model = replace(model, base=str(Path(model.base).expanduser().resolve()))
    return model


def _unet_levels(base: str) -> int | None:
    """The UNet's level count, when its config can be read before loading the model."""
    from variants.tiny import EMBEDDED_UNET, SHIPPED

    config = (SHIPPED if base == "tiny" else Path(base).expanduser()) / "unet" / "config.json"
    if base == "tiny" and not config.is_file():  # its absence is reported on its own
        return len(EMBEDDED_UNET["block_out_channels"])
    try:
        return len(json.loads(config.read_text()).get("block_out_channels", ())) or None
    except (OSError, ValueError, AttributeError):  # unreadable: loading the model will say why
        return None


def _conditions(check: Checker, conditions: ConditionSettings) -> ConditionSettings:
    source = check.folder_or(("conditions", "source"), conditions.source, "synthetic")
    if source == "synthetic":
        from metrics.synthetic import KINDS

        check.require(bool(conditions.kinds), ("conditions", "kinds"), "no kinds", f"use {KINDS}")
        for kind in conditions.kinds:
            check.choice(("conditions", "kinds"), kind, KINDS)
        check.at_least(conditions, "conditions", ("count",), 1)
        check.require(conditions.texture_scale > 0, ("conditions", "texture_scale"),
                      "texture_scale must be > 0", "use 2 (the embedded model's textures) or 1")
    return replace(conditions, source=source)


def _tune(check: Checker, tune: TuneSettings, arms: list[str], device: str) -> TuneSettings:
    check.choice(("tune", "budget"), tune.budget, tuple(BUDGETS))
    tune = with_budget(tune)
    check.at_least(
        tune, "tune", ("steps", "batch_size", "checkpoint_every", "grad_accumulation"), 1
    )
    check.require(tune.lr > 0, ("tune", "lr"), "lr must be > 0", "use e.g. 1e-4")
    check.require(0 <= tune.ema < 1, ("tune", "ema"), "ema must lie in [0, 1)", "0 = no EMA")
    check.choice(("tune", "mixed_precision"), tune.mixed_precision, ("no", "fp16", "bf16"))
    from variants.memory import AUTOCAST, CHECKPOINTING, FROZEN_DTYPES

    check.choice(("tune", "checkpointing"), tune.checkpointing, CHECKPOINTING)
    check.choice(("tune", "frozen_dtype"), tune.frozen_dtype, FROZEN_DTYPES)
    autocast = AUTOCAST.get(tune.frozen_dtype)
    check.require(
        autocast in (None, tune.mixed_precision),
        ("tune", "frozen_dtype"),
        f"frozen_dtype {tune.frozen_dtype} needs mixed_precision {autocast!r}",
        f"set tune.mixed_precision = {autocast!r} or frozen_dtype = 'float32'",
    )
    _launch(check, tune, device)
    check.choice(("tune", "exsvd_weights"), tune.exsvd_weights, ("own", "released"))
    data = check.folder_or(("tune", "data"), tune.data, "synthetic")
    if data != "synthetic":  # listing only; unreadable or short videos are skipped when loaded
        from metrics.video_io import find_videos

        try:
            find_videos(data)
        except BenchError as err:
            raise check.fail(("tune", "data"), f"{data}: {err.problem}", err.fix) from None
    tune = replace(
        tune,
        data=data,
        released_weights=check.file_or_empty(("tune", "released_weights"), tune.released_weights),
    )
    check.require(
        tune.exsvd_weights == "own" or "exsvd" not in arms or bool(tune.released_weights),
        ("tune", "released_weights"),
        "exsvd_weights = 'released' needs the checkpoint file",
        "set tune.released_weights to ExVideo-SVD-128f-v1's model.fp16.safetensors",
    )
    return tune


def _launch(check: Checker, tune: TuneSettings, device: str) -> None:
    """Data-parallel post-tuning (bench launches it, one arm at a time)."""
    check.at_least(tune, "tune", ("processes",), 1)
    check.require(
        not tune.launched or device in ("cpu", "cuda"),
        ("tune", "processes"),
        f"data-parallel post-tuning on {device}; its processes take one GPU each",
        "set model.device = 'cuda' (CUDA_VISIBLE_DEVICES chooses the GPUs)",
    )
    if device == "cuda" and tune.launched:
        import torch

        gpus = torch.cuda.device_count()
        check.require(
            tune.processes <= gpus,
            ("tune", "processes"),
            f"processes = {tune.processes}, but {gpus} GPU{'s' if gpus != 1 else ''} visible",
            f"set tune.processes <= {gpus}",
        )
    if tune.deepspeed:
        check.require(
            device == "cuda",
            ("tune", "deepspeed"),
            "DeepSpeed post-tuning runs on GPUs (accelerate sets no CPU process group up for it)",
            "set model.device = 'cuda', or tune.deepspeed = false for DDP on CPU processes",
        )
        from importlib.metadata import PackageNotFoundError, version

        from variants.launch import check_deepspeed

        try:
            check_deepspeed(version("deepspeed"), tune.grad_accumulation)
        except PackageNotFoundError:
            raise check.fail(("tune", "deepspeed"), "deepspeed is not installed",
                             "pip install -e '.[deepspeed]'") from None
        except BenchError as err:
            raise check.fail(("tune", "grad_accumulation"), err.problem, err.fix) from None


def _generation(check: Checker, generation: GenerationSettings) -> GenerationSettings:
    check.require(
        bool(generation.seeds) and min(generation.seeds) >= 0,
        ("generation", "seeds"),
        "seeds must be a non-empty list of integers >= 0",
        "use e.g. [0, 1]",
    )
    check.require(
        len(set(generation.seeds)) == len(generation.seeds),
        ("generation", "seeds"),
        f"seeds {generation.seeds} repeat a seed (its videos would count twice)",
        "list each seed once",
    )
    check.at_least(generation, "generation", ("steps", "decode_chunk", "fps_id"), 1)
    check.at_least(generation, "generation", ("min_guidance", "motion_bucket", "noise_aug"), 0)
    check.require(
        generation.min_guidance <= generation.max_guidance,
        ("generation", "min_guidance"),
        f"min_guidance {generation.min_guidance} > max_guidance {generation.max_guidance} (the "
        "guidance rises from the first frame's to the last's)",
        "set min_guidance <= max_guidance",
    )
    check.require(generation.output_fps > 0, ("generation", "output_fps"), "not > 0", "use 8")
    return generation


def _evaluate(check: Checker, evaluate: EvaluateSettings, model: ModelSettings):
    check.choice(("evaluate", "flow"), evaluate.flow, FLOWS)
    check.choice(("evaluate", "lpips_net"), evaluate.lpips_net, ("alex", "vgg"))
    check.at_least(evaluate, "evaluate", ("batch_size",), 1)
    check.device(("evaluate", "device"), evaluate.device or model.device)
    check.require(
        bool(evaluate.metrics), ("evaluate", "metrics"), "evaluate.metrics is empty", "use ['*']"
    )
    clip_b32 = evaluate.clip_model == "ViT-B-32"
    check.require(
        clip_b32 or bool(evaluate.clip_weights),
        ("evaluate", "clip_model"),
        f"{evaluate.clip_model} has no weights the project resolves (only ViT-B-32's)",
        "set evaluate.clip_weights to its open_clip checkpoint, or use ViT-B-32",
    )
    if not clip_b32:
        import open_clip

        check.require(
            evaluate.clip_model in open_clip.list_models(),
            ("evaluate", "clip_model"),
            f"{evaluate.clip_model!r} is not an open_clip model",
            "see open_clip.list_models()",
        )
    try:
        metric_names(evaluate.metrics)
    except BenchError as err:
        fix = err.fix or "see python -m bench eval --list-metrics"
        raise check.fail(("evaluate", "metrics"), f"{err.subject}: {err.problem}", fix) from None
    return replace(
        evaluate,
        device=evaluate.device or model.device,
        flow_weights=check.file_or_empty(("evaluate", "flow_weights"), evaluate.flow_weights),
        clip_weights=check.file_or_empty(("evaluate", "clip_weights"), evaluate.clip_weights),
    )


def metric_names(patterns: list[str]) -> list[str]:
    """The per-video metrics a run scores: patterns expanded, reference metrics in (every
    condition has its ground truth), prompt and set-level metrics (FVD) out."""
    from metrics.evaluator import METRICS, select_metrics

    chosen = select_metrics(patterns, with_reference=True, with_prompt=False)
    for name in chosen:
        if METRICS.get(name).info.set_level and name in patterns:
            problem = "set-level metric (one value per arm); bench run scores videos"
            raise BenchError(name, problem, "leave it out")
    return [name for name in chosen if not METRICS.get(name).info.set_level]


def _arms(arms: list[str], origin: str) -> list[str]:
    from variants import list_variants

    registered = ", ".join(list_variants())
    if arms == ["all"]:
        return list_variants()
    if not arms:
        raise BenchError(origin, "no arms", f"name some, or 'all': {registered}")
    for arm in arms:
        if arm not in list_variants():
            raise BenchError(origin, f"unknown arm '{arm}'", f"registered: {registered} (or 'all')")
    return list(dict.fromkeys(arms))
