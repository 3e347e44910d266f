"""``bench perf budget``: a post-tuning budget of ``bench run`` timed, every tuned arm trained as
the run trains it (one ``EncodedClips`` shared by the arms: each step's clips rendered and
encoded once) beside each arm rendering and encoding its own, with the budget's time target
and a check that both ways give byte-identical tuned weights."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.help_format import HelpFormatter

TARGET_S = {"quick": 5 * 60, "full": 60 * 60}  # issue 7: the four tuned arms together, 2 cores
WAYS = ("shared", "per-arm")


def add_parser(targets) -> None:
    from bench.run_config import BUDGETS

    parser = targets.add_parser(
        "budget",
        formatter_class=HelpFormatter,
        help="a post-tuning budget of bench run: the tuned arms sharing encoded clips vs each "
        "encoding its own, against the budget's time target",
        description="Post-tunes every tuned arm at a budget of bench run (default run settings "
        "otherwise) two ways and prints seconds per arm side by side: 'shared' (as bench run "
        "does: the arms share one EncodedClips, so each step's clips are rendered and encoded "
        "once) and 'per-arm' (each arm renders and encodes its own); then the ratio, the "
        "budget's target (quick: the four arms <= 5 min on 2 cores; full: <= 60 min) and "
        "whether both ways gave byte-identical tuned weights.",
    )
    parser.add_argument("--budget", default="quick", choices=tuple(BUDGETS),
                        help="the bench run budget whose post-tuning is timed")
    parser.add_argument("--steps", type=int, help="steps per arm (default: the budget's)")
    parser.add_argument("--base", default="tiny", help="base model, as the model.base setting")
    parser.add_argument("--frames", type=int, default=32, help="post-tuning length")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where the arms are post-tuned")
    parser.add_argument("--shared-only", action="store_true",
                        help="time only the 'shared' way (half the time; no ratio)")
    parser.set_defaults(run=run_budget)


def run_budget(args: argparse.Namespace) -> int:
    import functools
    from dataclasses import replace

    import torch
    from accelerate import PartialState

    from bench.common import use_device
    from bench.run_checks import check_and_resolve
    from bench.run_config import BUDGETS, RunConfig, TuneSettings, with_budget
    from bench.stages.context import quiet_libraries
    from bench.stages.inputs import base_folder
    from bench.stages.tune import train, training_clips, tuned_arms
    from metrics.weights import sha256_of
    from variants import list_variants
    from variants.generate import load_base_pipeline

    use_device(args.device)
    config = RunConfig()
    config = replace(
        config,
        arms=list_variants(),
        model=replace(config.model, base=args.base, extended_length=args.frames,
                      device=args.device),
        tune=with_budget(TuneSettings(budget=args.budget, steps=args.steps)),
    )
    flags = {("model", "base"): "--base", ("model", "extended_length"): "--frames",
             ("model", "device"): "--device", ("tune", "steps"): "--steps"}
    config = check_and_resolve(config, flags, launched=1)  # bad flags: one line, before work
    arms = tuned_arms(config)
    PartialState(cpu=args.device == "cpu")  # post_tune's Accelerator follows it
    quiet_libraries()
    pipeline = load_base_pipeline(str(base_folder(config.model)))
    model, tune = config.model, config.tune
    print(f"budget {args.budget}: {len(arms)} arms x {tune.steps} steps, {model.extended_length} "
          f"frames at {model.size}x{model.size}, batch {tune.batch_size}, base {model.base}, "
          f"{args.device}")
    ways = WAYS[:1] if args.shared_only else WAYS
    seconds: dict[str, dict[str, float]] = {way: {} for way in ways}
    weights: dict[str, dict[str, list[str]]] = {way: {} for way in ways}  # sha256 per file
    with tempfile.TemporaryDirectory(prefix="perf-budget-") as tmp:
        for way in ways:
            shared = functools.cache(lambda: training_clips(config, runs=len(arms)))
            data = shared if way == "shared" else None
            for arm in arms:
                folder = Path(tmp, way, arm)
                start = time.perf_counter()
                train(config, pipeline, arm, folder, progress=False, data=data)
                seconds[way][arm] = time.perf_counter() - start
                saved = sorted((folder / "unet_ema").glob("*.safetensors"))
                weights[way][arm] = [sha256_of(path) for path in saved]
    print(f"{'arm':18s}" + "".join(f"{way:>10s} s" for way in ways))
    for arm in arms:
        print(f"{arm:18s}" + "".join(f"{seconds[way][arm]:12.1f}" for way in ways))
    totals = {way: sum(seconds[way].values()) for way in ways}
    print(f"{'total':18s}" + "".join(f"{totals[way]:12.1f}" for way in ways))
    if not args.shared_only:
        same = weights["shared"] == weights["per-arm"]
        print(f"ratio shared / per-arm: {totals['shared'] / totals['per-arm']:.2f}x; tuned "
              f"weights {'byte-identical' if same else 'DIFFER'}")
    target, budget_steps = TARGET_S[args.budget], BUDGETS[args.budget]["steps"]
    verdict = "met" if totals["shared"] <= target else "NOT met"
    if (tune.steps, model.extended_length, model.base, args.device, torch.get_num_threads()) != (
        budget_steps, RunConfig().model.extended_length, "tiny", "cpu", 2
    ):
        verdict = (f"not judged: the target is for {budget_steps} steps of the default run on 2 "
                   "CPU threads")
    print(f"target: the tuned arms together <= {target // 60} min on 2 CPU cores: "
          f"{totals['shared']:.0f} s as bench run trains them ({verdict})")
    return 0 if args.shared_only or weights["shared"] == weights["per-arm"] else 1

