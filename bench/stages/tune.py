"""Post-tuning of the tuned arms into ``tune/<arm>/`` (``variants.posttune.post_tune``), or the
released ExVideo checkpoint for exsvd. An interrupted tuning resumes from its checkpoint, and
only for the same unit key. Each arm trains in this process, or in a child process of its own
(``python -m bench.stages.tune RUN_DIR ARM``): outside the process group when bench runs under
``accelerate launch``, and as an ``accelerate launch`` of ``tune.processes`` (DDP or DeepSpeed)
when one arm trains data-parallel."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from bench.child import DEEPSPEED_CONFIG, launch_command, run_child
from bench.run_cache import Unit, folder_stamp, read_record, unit_key
from bench.run_config import RunConfig
from bench.stages.context import Context, pending_units, run_units
from metrics.atomic import atomic_path
from metrics.errors import BenchError

if TYPE_CHECKING:
    from variants.posttune import EncodedClips

EMA = "unet_ema"  # the tuned arm generation uses: the EMA of its trainable weights
PENDING = ".pending.json"  # the key of the tuning under way, whose checkpoint a rerun resumes
ERRORS = ".error-rank*.txt"  # a launch's processes' one-line errors, for bench to print once
DATA_INDEX = ".data-index.json"  # the training videos' lengths, scanned once for all processes


def tuned_unet(unit: Unit) -> Path:
    """A tune unit's output that generation loads (``ExSVDUNet.from_pretrained``)."""
    return next(path for path in unit.outputs if path.name == EMA)


def tuned_arms(config: RunConfig) -> list[str]:
    from variants import get_variant

    return [arm for arm in config.arms if get_variant(arm).post_tuned]


# settings that do not change the tuned weights: the budget's name (its numbers are resolved),
# how often to checkpoint (resume is bit for bit), checkpointing (recomputes the same maths),
# deterministic (the same sums in a fixed order)
NOT_IN_KEY = (
    "exsvd_weights",
    "released_weights",
    "budget",
    "checkpoint_every",
    "checkpointing",
    "deterministic",
    "data",  # the folder's contents are (folder_stamp), not where it lies
    "processes",  # in the key as the launch, only when not one plain process (older keys hold)
    "deepspeed",
)


def is_released(config: RunConfig, arm: str) -> bool:
    return arm == "exsvd" and config.tune.exsvd_weights == "released"


def launched_arm(config: RunConfig, arm: str) -> bool:
    """The arm trains in an accelerate launch of its own (tune.processes, tune.deepspeed)."""
    return config.tune.launched and not is_released(config, arm)


def trains_here(ctx: Context, arm: str) -> bool:
    """The arm's tuning runs in this process, not in a child (under a launch of bench itself,
    or a launch of its own)."""
    return ctx.shard.count == 1 and not launched_arm(ctx.config, arm)


def tune_units(ctx: Context) -> list[Unit]:
    from bench.stages.inputs import model_key
    from variants import get_variant
    from variants.objective import ObjectiveConfig

    tune = ctx.config.tune
    base = model_key(ctx, leave_out=("dtype",))  # tuning runs in float32 whatever model.dtype
    units = []
    for arm in tuned_arms(ctx.config):
        released = is_released(ctx.config, arm)
        if released:
            what = {"released": ctx.checksums.file(Path(tune.released_weights))}
        else:
            settings = {k: v for k, v in asdict(tune).items() if k not in NOT_IN_KEY}
            data = tune.data if tune.data == "synthetic" else folder_stamp(Path(tune.data))
            what = {
                "settings": settings,
                "data": data,
                "seed": ctx.config.seed,
                "conditioning": conditioning(ctx.config),
                "objective": asdict(ObjectiveConfig()),  # what post_tune trains with
            }
            if tune.launched:
                what["launch"] = {"processes": tune.processes, "deepspeed": tune.deepspeed}
            if tune.deepspeed:  # an edited config (clipping, ZeRO stage) trains otherwise
                what["launch"]["config"] = ctx.checksums.file(DEEPSPEED_CONFIG)
        key = unit_key("tune", base, asdict(get_variant(arm)), what)
        folder = ctx.path("tune", arm)
        outputs = ("unet", EMA, "training.json") + (() if released else ("loss.csv",))
        units.append(
            Unit(
                "tune",
                arm,
                arm,
                key,
                folder / ".done.json",
                tuple(folder / name for name in outputs),
            )
        )
    return units


def check_not_nested(config: RunConfig, processes: int) -> None:
    """``bench run`` itself under a launch of ``processes`` shares the arms out, one per
    process, so it cannot also launch each arm over several."""
    if processes > 1 and config.tune.processes > 1:
        raise BenchError(
            "tune.processes",
            f"processes = {config.tune.processes} under a launch of {processes} processes, "
            "which share the arms out one per process",
            "run bench without accelerate launch (it launches each arm's tuning itself) or set "
            "tune.processes = 1",
        )


def run(ctx: Context) -> list[Unit]:
    units = tune_units(ctx)
    # the arms this process trains itself share one source of encoded clips
    readers = [
        unit for unit in pending_units(ctx, "tune", units)
        if trains_here(ctx, unit.arm) and not is_released(ctx.config, unit.arm)
    ]
    index = ctx.path("tune", DATA_INDEX)
    data = functools.cache(lambda: training_clips(ctx.config, runs=len(readers), index=index))
    run_units(ctx, "tune", units, lambda unit: tune_arm(ctx, unit, data), drop_resume_state)
    return units


def tune_arm(ctx: Context, unit: Unit, data: Callable[[], EncodedClips]) -> dict:
    folder = ctx.path("tune", unit.arm)
    pending = folder / PENDING
    if "tune" in ctx.forced or read_record(pending) != {"key": unit.key}:
        drop_resume_state(unit)  # a checkpoint of other settings is never resumed
    for stale in ("unet", EMA):  # an earlier tuning's outputs never outlive a recompute
        shutil.rmtree(folder / stale, ignore_errors=True)
    for stale in (folder / "loss.csv", folder / "training.json", *folder.glob(ERRORS)):
        stale.unlink(missing_ok=True)
    with atomic_path(pending) as tmp:
        tmp.write_text(json.dumps({"key": unit.key}))
    progress = ctx.shard.is_main and sys.stderr.isatty()
    own_launch = launched_arm(ctx.config, unit.arm)
    if trains_here(ctx, unit.arm):
        train(ctx.config, ctx.pipeline("float32"), unit.arm, folder, progress, data)
    else:
        if own_launch:  # a folder without usable videos: one line here, not one per process
            data()
        runner = launch_command(ctx.config.tune, ctx.config.model.device) if own_launch else [
            sys.executable]
        command = [*runner, "-m", "bench.stages.tune", str(ctx.run_dir), unit.arm]
        env = ctx.shard.solo_env(ctx.config.model.device)
        returncode = run_child(command + (["--progress"] if progress else []), env)
        if returncode:
            print_launch_errors(folder)
            raise BenchError(
                f"tune/{unit.arm}",
                f"post-tuning exited with {returncode}",
                "see its message above",
            )
    return {}


def print_launch_errors(folder: Path) -> None:
    """The one-line errors the processes of an arm's launch left, each different one once (a
    failure in every process is one line, one in a single process is not lost)."""
    errors = sorted(folder.glob(ERRORS), key=lambda p: int(p.stem.rpartition("rank")[2]))
    for line in dict.fromkeys(path.read_text() for path in errors):
        print(f"error: {line}", file=sys.stderr)
    for path in errors:
        path.unlink()


def drop_resume_state(unit: Unit) -> None:
    """What a resume of the arm's tuning reads: dropped before a tuning of other settings, and
    after the arm's done record, not before it: killed in between (checksumming SVD-XT's outputs
    takes seconds), the rerun resumes from the last checkpoint instead of step 0."""
    folder = unit.record.parent
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    shutil.rmtree(folder / "deepspeed", ignore_errors=True)
    (folder / PENDING).unlink(missing_ok=True)


def train(config: RunConfig, pipeline, arm: str, folder: Path, progress: bool,
          data: Callable[[], EncodedClips] | None = None) -> None:
    """Build the arm on the base UNet and post-tune it (or load the released weights) on
    ``data()``, the run's training clips (``training_clips``), shared by the arms of a process."""
    from variants import get_variant

    model, tune = config.model, config.tune
    unet = get_variant(arm).build(
        pipeline.unet,
        base_length=model.base_length,
        table_size=model.table_size,
        bounce_low=model.bounce_low,
    )
    if is_released(config, arm):
        save_released(unet, Path(tune.released_weights), folder)
        return
    from variants.posttune import TuneConfig, post_tune

    clips = data() if data is not None else training_clips(config)  # one arm: nothing kept
    settings = TuneConfig(
        steps=tune.steps,
        frames=model.extended_length,
        lr=tune.lr,
        batch_size=tune.batch_size,
        grad_accumulation=tune.grad_accumulation,
        seed=config.seed,
        ema_decay=tune.ema,
        mixed_precision=tune.mixed_precision,
        checkpointing=tune.checkpointing,
        frozen_dtype=tune.frozen_dtype,
        fused_adamw=tune.fused_adamw,
        deterministic=tune.deterministic,
        checkpoint_every=tune.checkpoint_every,
        **conditioning(config),
    )
    post_tune(unet, pipeline, clips, settings, folder, resume=True, progress=progress)


def training_clips(config: RunConfig, runs: int = 1, index: Path | None = None,
                   warn: bool = True) -> EncodedClips:
    """The post-tuning clips of the run (synthetic or from ``tune.data``) for ``runs`` arms
    trained one after another in this process: each step's clips are encoded once and kept (in
    ``variants.posttune.ram_budget``) until the last of them has read them. ``index``: where the
    training videos' lengths are kept (``variants.data.scan_lengths``); ``warn``: say how many
    were skipped."""
    from variants.posttune import EncodedClips, ram_budget, synthetic_clips

    model, tune = config.model, config.tune
    frames, size = model.extended_length, model.size
    max_bytes = ram_budget() if runs > 1 else 0
    if tune.data == "synthetic":
        return EncodedClips(synthetic_clips(frames, size, tune.batch_size), max_bytes, runs)
    from variants.data import VideoFolderClips

    clips = VideoFolderClips(Path(tune.data), frames, size, tune.batch_size, index)
    if clips.skipped and warn:
        print(
            f"warning: {len(clips.skipped)} training files skipped (not videos, too short or "
            "unreadable)",
            file=sys.stderr,
        )
    return EncodedClips(clips, max_bytes, runs)


def conditioning(config: RunConfig) -> dict:
    """Train with the micro-conditioning the arms are sampled with (the pipeline passes its
    fps argument minus one)."""
    generation = config.generation
    return {
        "fps_id": generation.fps_id - 1,
        "motion_bucket": generation.motion_bucket,
        "noise_aug": generation.noise_aug,
    }


def save_released(unet, path: Path, folder: Path) -> None:
    """ExVideo's released tensors loaded into the exsvd arm, saved as a tuned arm would be."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from variants import set_trainable
    from variants.released import load_released

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise BenchError(path, f"cannot be read as safetensors ({err})",
                         "download ExVideo's released checkpoint again") from None
    loaded = load_released(unet, tensors)
    for name in ("unet", "unet_ema"):
        unet.save_pretrained(folder / name)
    record = {
        "config": {"released_weights": str(path), **loaded},
        "parameters": set_trainable(unet, True),
        "steps_done": 0,
    }
    with atomic_path(folder / "training.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def main(argv: list[str]) -> int:
    """A child process: post-tune one arm of the run in ``argv[0]`` on its own."""
    run_dir, arm = Path(argv[0]), argv[1]
    try:  # the imports too: seconds in which bench, interrupted, may stop this process
        from bench.run_settings import config_from_dict
        from bench.stages.context import quiet_libraries
        from bench.stages.inputs import base_folder
        from variants.generate import load_base_pipeline

        quiet_libraries()
        record = json.loads((run_dir / "run.json").read_text())
        config = config_from_dict(record["config"], str(run_dir / "run.json"))
        pipeline = load_base_pipeline(str(base_folder(config.model)))
        # a launch's processes: bench has scanned the training videos and said what it skipped
        data = functools.partial(training_clips, config, index=run_dir / "tune" / DATA_INDEX,
                                 warn="RANK" not in os.environ)
        train(config, pipeline, arm, run_dir / "tune" / arm, "--progress" in argv, data)
    except BenchError as err:
        if "RANK" in os.environ:  # a launch's process: bench prints each different error once
            error = run_dir / "tune" / arm / ERRORS.replace("*", os.environ["RANK"])
            with atomic_path(error) as tmp:
                tmp.write_text(str(err))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # bench, interrupted, stops its children: no traceback from each
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
