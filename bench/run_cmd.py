"""``bench run``: the whole ablation in one command, conditions -> tune -> generate -> evaluate
-> aggregate -> report, cached per unit, resumable, and sharded over the processes of
``accelerate launch -m bench run``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

STAGES = ("tune", "generate", "evaluate", "aggregate", "report")
HELP = "run the ablation: post-tune, generate, evaluate, aggregate, report (cached, resumable)"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "run",
        help=HELP,
        description=HELP + ". Settings: the built-in defaults (configs/default.toml), then "
        "--config, then --set and the flags below. Finished units are kept and skipped; "
        "'accelerate launch --multi_gpu --num_processes N -m bench run ...' shares the units "
        "among N processes (GPUs, or CPU processes with --device cpu); instead, "
        "--set tune.processes=N post-tunes each arm data-parallel over N (DDP, or DeepSpeed "
        "ZeRO-2 with --set tune.deepspeed=true).",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings, e.g. configs/svd-xt-128.toml"
    )
    parser.add_argument(
        "--out",
        metavar="RUN_DIR",
        help="run directory (default runs/<config name>, runs/default without)",
    )
    parser.add_argument("--variants", metavar="all|ARM,...", help="arms to run (config: arms)")
    parser.add_argument("--budget", choices=("quick", "full"), help="post-tuning budget")
    parser.add_argument("--device", help="cpu, cuda or cuda:N for every stage")
    parser.add_argument(
        "--exsvd-weights",
        choices=("own", "released"),
        help="exsvd from own post-tuning or ExVideo's released checkpoint",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (TOML value), e.g. --set tune.steps=20; repeatable",
    )
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        choices=STAGES,
        metavar="STAGE",
        help=f"recompute STAGE and the stages after it ({', '.join(STAGES)}); repeatable",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a run directory whose config changed (only affected units are recomputed)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bench.common import check_writable
    from bench.run_cache import Checksums
    from bench.run_record import check_run_dir, mark_finished, write_run_json
    from bench.run_settings import load_config
    from bench.run_shard import Shard
    from bench.stages.context import Context
    from bench.stages.evaluate import plan_metrics
    from bench.stages.inputs import model_key, samples
    from bench.stages.tune import check_not_nested

    config_path = Path(args.config) if args.config else None
    config = load_config(config_path, args.set, flags(args))
    check_not_nested(config, int(os.environ.get("WORLD_SIZE") or 1))  # set by accelerate launch
    if args.budget:
        warn_budget_overridden(config, args.budget)
    run_dir = Path(args.out or Path("runs") / (config_path.stem if config_path else "default"))
    first = min((STAGES.index(stage) for stage in args.force), default=len(STAGES))
    check_run_dir(run_dir, config, resume=args.resume, force=bool(args.force))
    check_writable(run_dir)
    plan = plan_metrics(config.evaluate)
    shard = Shard.launched(cpu=config.model.device == "cpu")
    ctx = Context(
        run_dir,
        config,
        shard,
        Checksums(run_dir / ".cache", shard.index),
        frozenset(STAGES[first:]),
    )
    ctx.model_key = model_key(ctx)
    samples(ctx)  # a conditions folder without videos: refused before run.json pins the config
    if shard.is_main:
        announce(ctx, plan)
    shard.barrier()
    if shard.is_main:
        write_run_json(run_dir, config, shard.count)
    shard.barrier()
    clock = Clock(ctx)
    execute(ctx, plan, clock)
    if shard.is_main:
        clock.write(finished=True)
        computed = any(counts["computed"] for counts in ctx.counts.values())
        mark_finished(run_dir, shard.count, computed)
        summarize(ctx, clock)
    return 0


def warn_budget_overridden(config, budget: str) -> None:
    """--budget picks the budget's numbers only where the config and --set name none."""
    from bench.run_config import BUDGETS

    kept = [
        f"tune.{key} = {getattr(config.tune, key)!r}"
        for key, value in BUDGETS[budget].items()
        if getattr(config.tune, key) != value
    ]
    if kept:
        print(f"warning: --budget {budget}: {', '.join(kept)} set in the config or --set win over "
              "the budget's numbers", file=sys.stderr)


def flags(args: argparse.Namespace) -> dict:
    """The dedicated flags as settings (they override --config and --set)."""
    given = {}
    if args.variants is not None:  # --variants '' is an error, not the config's arms
        given[("", "arms")] = (args.variants, "--variants")
    if args.budget:
        given[("tune", "budget")] = (args.budget, "--budget")
    if args.device:
        given[("model", "device")] = given[("evaluate", "device")] = (args.device, "--device")
    if args.exsvd_weights:
        given[("tune", "exsvd_weights")] = (args.exsvd_weights, "--exsvd-weights")
    return given


def execute(ctx, plan, clock) -> None:
    from bench.stages import aggregate, evaluate, generate, inputs, report, tune

    clock("conditions", inputs.run)
    tuned = clock("tune", tune.run)
    videos = clock("generate", generate.run)
    scored = clock("evaluate", evaluate.run, plan)
    results = clock("aggregate", aggregate.run, scored)
    clock("report", report.run, tuned + videos + results)


class Clock:
    """Runs a stage and records ``timings.json``: compute seconds of the stage's current units
    (kept in their records, so resumed and cached stages count what they cost), this call's
    wall seconds, and how many units were computed or cached."""

    def __init__(self, ctx):
        from bench.run_record import now

        self.ctx, self.started = ctx, now()
        self.compute: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def __call__(self, name: str, stage, *args):
        start = time.perf_counter()
        units = stage(self.ctx, *args)
        self.wall[name] = time.perf_counter() - start
        self.compute[name] = sum(self.ctx.upstream(u.record).get("seconds", 0.0) for u in units)
        if self.ctx.shard.is_main:
            self.write(finished=False)
        return units

    def write(self, finished: bool) -> None:
        from bench.run_record import now, write_json

        write_json(
            self.ctx.path("timings.json"),
            {
                "stages": self.compute,
                "wall": self.wall,
                "units": self.ctx.counts,
                "processes": self.ctx.shard.count,
                "started": self.started,
                "finished": now() if finished else None,
            },
        )


def announce(ctx, plan) -> None:
    """The resolved config in a few lines, and the metrics that cannot run."""
    from bench.stages.tune import tuned_arms

    config = ctx.config
    model, tune, gen = config.model, config.tune, config.generation
    conditions = config.conditions
    source = (
        f"{conditions.count} synthetic ({', '.join(conditions.kinds)})"
        if conditions.source == "synthetic"
        else f"the videos of {conditions.source}"
    )
    lines = [
        f"bench run -> {ctx.run_dir} ({ctx.shard.count} process{'es' * (ctx.shard.count > 1)})",
        f"  model      {model.base}: {model.base_length} -> {model.extended_length} frames, "
        f"{model.size}x{model.size}, {model.dtype}, {model.device}",
        f"  arms       {', '.join(config.arms)}",
        f"  tune       {len(tuned_arms(config))} arms, budget {tune.budget}: {tune.steps} steps, "
        f"lr {tune.lr:g}, batch {tune.batch_size}, ema {tune.ema:g}, seed {config.seed}, "
        f"data {tune.data}, exsvd {tune.exsvd_weights}{launch_words(tune)}",
        f"  conditions {source}, seeds {gen.seeds}",
        f"  generation {gen.steps} steps, guidance {gen.min_guidance:g}-{gen.max_guidance:g}, "
        f"fps id {gen.fps_id}, motion bucket {gen.motion_bucket}",
        f"  metrics    {len(plan.names) - len(plan.unavailable)} of {len(plan.names)} "
        f"per video; {', '.join(f'{k} {v[:24]}' for k, v in plan.resolved.items())}",
        f"  config     {ctx.run_dir / 'run.json'}",
    ]
    print("\n".join(lines))
    by_reason: dict[str, list[str]] = {}
    for name, reason in plan.unavailable.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        print(f"warning: {', '.join(names)} unavailable: {reason}", file=sys.stderr)


def launch_words(tune) -> str:
    """How each arm's post-tuning is launched, when not in one plain process."""
    if not tune.launched:
        return ""
    how = "DeepSpeed" if tune.deepspeed else "DDP"
    return f", each arm over {tune.processes} process{'es' * (tune.processes > 1)} ({how})"


def summarize(ctx, clock: Clock) -> None:
    print(f"{'stage':11s} {'computed':>9s} {'cached':>7s} {'compute s':>10s} {'wall s':>8s}")
    for stage, counts in ctx.counts.items():
        print(
            f"{stage:11s} {counts['computed']:9d} {counts['cached']:7d} "
            f"{clock.compute[stage]:10.1f} {clock.wall[stage]:8.1f}"
        )
    print(
        f"results  {ctx.path('results')} (per_video.parquet/.csv, series.parquet, "
        "summary.csv, paired.csv)"
    )
    print(f"report   {ctx.path('report', 'index.html')}")
    for line in failures(ctx.path("results", "per_video.parquet")):
        print(f"warning: {line}", file=sys.stderr)


def failures(per_video: Path) -> list[str]:
    """One line per metric that failed on some videos (the report lists them too)."""
    import pandas as pd

    table = pd.read_parquet(per_video, columns=["metric", "status", "detail"])
    lines = []
    for metric, rows in table.groupby("metric", sort=False):
        failed = rows[rows["status"] == "error"]
        if len(failed):
            lines.append(f"{metric} failed on {len(failed)} of {len(rows)} videos "
                         f"({failed['detail'].iloc[0]}); see results/per_video.csv")
    return lines
