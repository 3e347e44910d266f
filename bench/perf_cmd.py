"""``bench perf``: speed benchmarks that print ratios measured side by side in one run."""

from __future__ import annotations

import argparse
import time
from functools import cached_property

HELP = "time the metric pipeline against the per-pair way peer suites work"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "perf",
        help=HELP,
        description=HELP + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    metrics = targets.add_parser(
        "metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="this project's pipeline (flows once, batched) vs one pair at a time, per metric",
        description="Evaluate a fixed synthetic set two ways in one run and print throughput "
        "and the ratio: (1) this project's pipeline, flows computed once per video, "
        "batched over pairs and shared by every metric; (2) the per-pair way, where "
        "each metric recomputes its own flows one pair at a time (batch 1).",
    )
    metrics.add_argument("--videos", type=int, default=4, help="videos in the synthetic set")
    metrics.add_argument("--frames", type=int, default=24, help="frames per video")
    metrics.add_argument("--size", type=int, default=128, help="height and width in pixels")
    metrics.add_argument("--flow", default="dis", choices=("dis", "raft_large", "raft_small"))
    metrics.add_argument("--flow-weights", metavar="FILE", help="RAFT weights file")
    metrics.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="time RAFT with random weights (same cost; flows meaningless)",
    )
    metrics.add_argument("--device", default="cpu")
    metrics.add_argument("--batch-size", type=int, default=16, help="pairs per flow batch")
    metrics.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is kept")
    metrics.set_defaults(run=run_metrics)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_time(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
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


def per_pair_way(evaluator, video) -> dict[str, float]:
    """Each metric on its own, recomputing the flows it uses one pair at a time (batch 1)."""
    from metrics.base import VideoContext

    scores = {}
    for name, metric in evaluator.metrics.items():
        ctx = VideoContext(video, evaluator.device)
        ctx.flows = _PerPairFlows(ctx.frames, evaluator.flow_backend)
        scores[name] = metric.score(ctx).value
    return scores


def run_metrics(args: argparse.Namespace) -> int:
    import math

    from bench.common import check_device
    from metrics import Evaluator, Video
    from metrics.synthetic import make_set

    check_device(args.device)
    videos = [
        Video(v.frames, None, f"synthetic-{v.kind}-{i}")
        for i, v in enumerate(
            make_set(args.videos, frames=args.frames, size=(args.size, args.size))
        )
    ]
    evaluator = Evaluator(
        None,
        flow=args.flow,
        device=args.device,
        flow_weights=args.flow_weights,
        allow_random_weights=args.allow_random_weights,
        flow_batch_size=args.batch_size,
    )
    print(
        f"set: {args.videos} synthetic videos x {args.frames} frames, {args.size}x{args.size}; "
        f"metrics: {', '.join(evaluator.names)}"
    )
    print(
        f"flow: {evaluator.provenance['flow_backend']} ({evaluator.provenance['flow_weights']}), "
        f"device {args.device}, best of {args.repeats}"
    )
    evaluator(videos[0])  # warm-up (lazy imports, kernels, thread pools)
    pipeline = [None] * len(videos)
    baseline = [None] * len(videos)

    def run_pipeline():
        for i, video in enumerate(videos):
            pipeline[i] = evaluator(video).scalars

    def run_baseline():
        for i, video in enumerate(videos):
            baseline[i] = per_pair_way(evaluator, video)

    fast = _best_time(run_pipeline, args.repeats, args.device)
    slow = _best_time(run_baseline, args.repeats, args.device)
    frames = args.videos * args.frames
    diff = max(
        abs(a[k] - b[k])
        for a, b in zip(pipeline, baseline, strict=True)
        for k in a
        if not (math.isnan(a[k]) and math.isnan(b[k]))
    )
    print(f"{'way':42s} {'seconds':>8s} {'videos/s':>9s} {'frames/s':>9s}")
    for label, seconds in (
        ("pipeline (flows once, batched, shared)", fast),
        ("per-pair (batch 1, flows per metric)", slow),
    ):
        print(f"{label:42s} {seconds:8.3f} {args.videos / seconds:9.2f} {frames / seconds:9.1f}")
    print(f"speed-up: {slow / fast:.2f}x  (largest score difference between the ways: {diff:.2e})")
    print(
        f"one {args.frames}-frame {args.size}x{args.size} video, all temporal metrics: "
        f"{fast / args.videos:.3f} s"
    )
    return 0
