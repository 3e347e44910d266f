"""``bench eval``: score video files with the registered metrics, one row per video."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from metrics.errors import BenchError

HELP = "score videos (files, frame folders, .npy/.npz, or folders of them)"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help=HELP,
        description=HELP + ". Prints a table and writes one row per video.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="video file (mp4/webm/avi/mkv/mov/gif), folder of numbered png/jpg "
        "frames, .npy/.npz uint8 [T,H,W,3] array, or a folder of these",
    )
    parser.add_argument(
        "--metrics",
        default="*",
        help="comma-separated metric names or wildcards, e.g. 'warping_error,motion_*'",
    )
    parser.add_argument(
        "--flow",
        default="auto",
        choices=("auto", "raft_large", "raft_small", "dis"),
        help="optical flow backend; auto = RAFT-large when its weights resolve, "
        "else OpenCV DIS (the result records which)",
    )
    parser.add_argument(
        "--flow-weights",
        metavar="FILE",
        help="RAFT weights file (else $EXSVD_WEIGHTS_RAFT_LARGE / _SMALL, "
        "the project weights dir, the torch hub cache, a download)",
    )
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="smoke tests only: run RAFT with random weights when none resolve; every row says so",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="frame pairs per optical-flow batch"
    )
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE.csv or FILE.parquet")
    parser.add_argument(
        "--series-out",
        metavar="FILE",
        help="write per-pair / per-triple series (long format) to FILE.csv|.parquet",
    )
    parser.add_argument(
        "--list-metrics",
        action="store_true",
        help="list the metrics with direction and unit, then exit",
    )
    parser.set_defaults(run=run)


def list_metrics_table() -> str:
    from metrics import create_metric, list_metrics

    arrows = {True: "higher better", False: "lower better", None: "descriptive"}
    lines = []
    for name in list_metrics():
        info = create_metric(name).info
        lines.append(
            f"{name:30s} {info.family:11s} {arrows[info.higher_is_better]:14s} {info.unit}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list_metrics:
        print(list_metrics_table())
        return 0
    if not args.paths:
        raise BenchError("eval", "no PATH given", "name video files or folders to score")
    from bench.common import check_device, check_table_path

    out = check_table_path(args.out)
    series_out = check_table_path(args.series_out)
    if args.batch_size < 1:
        raise BenchError("--batch-size", f"must be >= 1, got {args.batch_size}")
    check_device(args.device)

    from metrics import Evaluator
    from metrics.video_io import find_videos

    evaluator = Evaluator(
        [m.strip() for m in args.metrics.split(",") if m.strip()],
        flow=args.flow,
        device=args.device,
        flow_weights=args.flow_weights,
        allow_random_weights=args.allow_random_weights,
        flow_batch_size=args.batch_size,
    )
    problems: list[str] = []
    inputs: list[Path] = []
    for path in args.paths:
        try:
            inputs.extend(find_videos(path))
        except BenchError as err:
            problems.append(str(err))
    rows, series = evaluate_all(evaluator, inputs, problems)
    report(rows, series, evaluator, out, series_out)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if not rows:
        print("error: no video could be evaluated", file=sys.stderr)
    return 1 if problems or not rows else 0


def evaluate_all(evaluator, inputs, problems):
    """Evaluate each input; a bad video becomes a reported problem, the others still run."""
    from tqdm import tqdm

    from metrics.video_io import read_video

    rows, series = [], []
    for path in tqdm(inputs, desc="eval", unit="video", file=sys.stderr, disable=None):
        try:
            result = evaluator(read_video(path))
        except BenchError as err:
            problems.append(str(err))
            rows.append({"video": str(path), "error": err.problem})
            continue
        problems.extend(result.errors.values())
        rows.append(
            {
                "video": result.source,
                "frames": result.num_frames,
                "height": result.height,
                "width": result.width,
                "fps": result.fps,
                **result.scalars,
                "error": "; ".join(f"{k}: {v}" for k, v in result.errors.items()),
                "notes": "; ".join(result.notes),
                **result.provenance,
            }
        )
        for metric, values in result.series.items():
            series.extend(
                {"video": result.source, "metric": metric, "index": i, "value": float(v)}
                for i, v in enumerate(values)
            )
    return rows, series


def report(rows, series, evaluator, out, series_out) -> None:
    import pandas as pd

    from bench.common import write_table

    if not rows:
        return
    table = pd.DataFrame(rows)
    if out:
        write_table(table, out)
    if series_out:
        write_table(pd.DataFrame(series, columns=["video", "metric", "index", "value"]), series_out)
    shown = table[["video", *[n for n in evaluator.names if n in table]]].copy()
    shown["video"] = shown["video"].map(lambda p: Path(p).name)
    print(shown.to_string(index=False, float_format=_fmt))
    print(
        f"flow: {evaluator.provenance['flow_backend']} "
        f"(weights: {evaluator.provenance['flow_weights']}), device {evaluator.device}"
    )
    if out:
        print(f"wrote {out}" + (f" and {series_out}" if series_out else ""))


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"
