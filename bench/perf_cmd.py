"""``bench perf``: speed benchmarks that print ratios measured side by side in one run."""

from __future__ import annotations

import argparse
import math
import time
from functools import cached_property

from bench.help_format import HelpFormatter

HELP = (
    "speed and memory benchmarks, side by side in one run: the metric pipeline, generation per "
    "arm vs stock SVD, the identity convolutions alone per layout, post-tuning steps per memory "
    "setting, a post-tuning budget of bench run"
)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "perf",
        help=HELP,
        description=HELP + ".",
        formatter_class=HelpFormatter,
    )
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    metrics = targets.add_parser(
        "metrics",
        formatter_class=HelpFormatter,
        help="this project's pipeline vs one pair / frame at a time, per metric",
        description="Evaluate a fixed synthetic set (each video with a noisy copy as its "
        "reference and its first frame as condition) two ways in one run and print "
        "throughput and the ratio: (1) this project's pipeline: flows and network "
        "embeddings computed once per video, batched, shared by every metric; (2) the "
        "way peer suites work: each metric recomputes what it needs, flows one pair "
        "at a time and networks one frame at a time (batch 1).",
    )
    metrics.add_argument("--videos", type=int, default=4, help="videos in the synthetic set")
    metrics.add_argument("--frames", type=int, default=24, help="frames per video")
    metrics.add_argument("--size", type=int, default=128, help="height and width in pixels")
    metrics.add_argument(
        "--metrics", default="*", help="metric names or wildcards, comma-separated; * is all"
    )
    metrics.add_argument("--flow", default="dis", choices=("dis", "raft_large", "raft_small"),
                         help="optical flow backend")
    metrics.add_argument("--flow-weights", metavar="FILE", help="RAFT weights file")
    metrics.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="time networks with random weights when none resolve (same cost)",
    )
    metrics.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    metrics.add_argument("--batch-size", type=int, default=16, help="pairs per flow batch")
    metrics.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is kept")
    metrics.set_defaults(run=run_metrics)
    from bench import perf_budget, perf_generate, perf_idconv, perf_tune

    perf_budget.add_parser(targets)
    perf_generate.add_parser(targets)
    perf_idconv.add_parser(targets)
    perf_tune.add_parser(targets)


def sync_device(device: str) -> None:
    """Wait for the device's queued work (timers around GPU work need it)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_time(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        best = min(best, time.perf_counter() - start)
    return best


class _PerPairFlows:
    """Flows as a per-pair suite computes them: one pair per call, each direction on demand."""

    def __init__(self, frames, backend):
        self.frames, self.backend = frames, backend

    def _one_by_one(self, src, dst):
        import torch

        return torch.cat([self.backend(src[i : i + 1], dst[i : i + 1]) for i in range(len(src))])

    @cached_property
    def forward(self):
        return self._one_by_one(self.frames[:-1], self.frames[1:])

    @cached_property
    def backward(self):
        return self._one_by_one(self.frames[1:], self.frames[:-1])


def per_metric_way(evaluator, video, reference) -> dict[str, float]:
    """Each metric on its own context: nothing shared, flows per pair, networks batch 1."""
    from metrics.base import VideoContext

    networks = list(evaluator.backbones._loaded.values())
    batch_sizes = [n.batch_size for n in networks]
    for network in networks:
        network.batch_size = 1
    try:
        scores = {}
        for name, metric in evaluator.metrics.items():
            if name in evaluator.unavailable:
                continue
            ctx = VideoContext(
                video,
                evaluator.device,
                backbones=evaluator.backbones,
                condition=video.frames[0],
                reference=reference,
            )
            ctx.flows = _PerPairFlows(ctx.frames, evaluator.flow_backend)
            scores[name] = metric.score(ctx).value
        return scores
    finally:
        for network, size in zip(networks, batch_sizes, strict=True):
            network.batch_size = size


def _timed_evaluator(args: argparse.Namespace):
    """The evaluator of the metrics chosen, less those needing more frames than ``--frames``
    (returned with the count each needs); a one-line error when nothing is left to time."""
    from bench.common import nothing_runs
    from metrics import Evaluator
    from metrics.errors import BenchError
    from metrics.evaluator import METRICS, select_metrics

    chosen = select_metrics(
        [m.strip() for m in args.metrics.split(",")], with_reference=True, with_prompt=False
    )
    longer = {n: METRICS.get(n).info.min_frames for n in chosen}
    longer = {n: count for n, count in longer.items() if count > args.frames}
    if len(longer) == len(chosen):
        raise BenchError("--frames", f"{args.frames} is too few for every metric chosen",
                         f"use --frames {min(longer.values())} or more")
    evaluator = Evaluator(
        [n for n in chosen if n not in longer],
        flow=args.flow,
        device=args.device,
        flow_weights=args.flow_weights,
        allow_random_weights=args.allow_random_weights,
        flow_batch_size=args.batch_size,
        with_reference=True,
    )
    if all(n in evaluator.unavailable for n in evaluator.names):
        reasons = dict.fromkeys(map(nothing_runs, evaluator.unavailable.values()))
        raise BenchError(", ".join(evaluator.unavailable),
                         f"unavailable, so nothing to time: {'; '.join(reasons)}",
                         "or pass --allow-random-weights to time them (same cost)")
    return evaluator, longer


def _largest_difference(pipeline: list[dict], baseline: list[dict]) -> float:
    """The largest difference of one score between the two ways (inf for NaN on one side)."""
    return max(
        (
            math.inf if math.isnan(a[k]) or math.isnan(b[k]) else abs(a[k] - b[k])
            for a, b in zip(pipeline, baseline, strict=True)
            for k in a.keys() & b.keys()
            if not (math.isnan(a[k]) and math.isnan(b[k]))
        ),
        default=0.0,
    )


def run_metrics(args: argparse.Namespace) -> int:
    from bench.common import check_at_least, use_device
    from metrics import Video
    from metrics.distortions import noise
    from metrics.synthetic import make_set

    use_device(args.device)
    for flag, value, low in (("--videos", args.videos, 1), ("--frames", args.frames, 2),
                             ("--size", args.size, 32), ("--batch-size", args.batch_size, 1),
                             ("--repeats", args.repeats, 1)):
        check_at_least(flag, value, low)
    clips = make_set(args.videos, frames=args.frames, size=(args.size, args.size))
    videos = [
        Video(noise(c.frames, 6, seed=i), None, f"synthetic-{c.kind}-{i}")
        for i, c in enumerate(clips)
    ]
    references = [Video(c.frames, None, f"reference-{i}") for i, c in enumerate(clips)]
    evaluator, longer = _timed_evaluator(args)
    timed = [n for n in evaluator.names if n not in evaluator.unavailable]
    print(
        f"set: {args.videos} synthetic videos x {args.frames} frames, {args.size}x{args.size}, "
        f"with references; device {args.device}, best of {args.repeats}"
    )
    print(f"metrics timed ({len(timed)}): {', '.join(timed)}")
    for name in evaluator.unavailable:
        print(f"not timed: {name} (weights unavailable; --allow-random-weights times it)")
    for name, count in longer.items():
        print(f"not timed: {name} (needs {count} frames; --frames {count} times it)")
    for key, label in evaluator.provenance.items():
        if key.endswith("_weights") or key == "flow_backend":
            print(f"{key}: {label}")

    def run_pipeline():
        return [evaluator(v, reference=r).scalars for v, r in zip(videos, references, strict=True)]

    def run_baseline():
        return [per_metric_way(evaluator, v, r) for v, r in zip(videos, references, strict=True)]

    pipeline, baseline = run_pipeline(), run_baseline()  # warm-up, and the scores to compare
    fast = _best_time(run_pipeline, args.repeats, args.device)
    slow = _best_time(run_baseline, args.repeats, args.device)
    frames = args.videos * args.frames
    print(f"{'way':44s} {'seconds':>8s} {'videos/s':>9s} {'frames/s':>9s}")
    for label, seconds in (
        ("pipeline (computed once, batched, shared)", fast),
        ("per-metric (flows per pair, networks batch 1)", slow),
    ):
        print(f"{label:44s} {seconds:8.3f} {args.videos / seconds:9.2f} {frames / seconds:9.1f}")
    print(f"speed-up: {slow / fast:.2f}x  (largest score difference between the ways: "
          f"{_largest_difference(pipeline, baseline):.2e})")
    print(
        f"one {args.frames}-frame {args.size}x{args.size} video with its reference, "
        f"{len(timed)} metrics: {fast / args.videos:.3f} s"
    )
    return 0
