"""``bench eval``: score video files with the registered metrics, one row per video."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.help_format import HelpFormatter
from metrics.errors import BenchError, MetricInputError

HELP = "score videos (files, frame folders, .npy/.npz, or folders of them)"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help=HELP,
        description=HELP + ". Prints a table and writes one row per video.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="video file (mp4, m4v, webm, avi, mkv, mov, gif, mpg, ts, wmv, flv), folder of "
        "numbered png/jpg frames, .npy/.npz uint8 [T,H,W,3] array, or a folder of these",
    )
    parser.add_argument(
        "--metrics",
        default="*",
        help="comma-separated metric names or wildcards, e.g. 'warping_error,motion_*'; the "
        "default leaves out metrics whose input (--reference, --prompt) is not given",
    )
    parser.add_argument(
        "--condition",
        default="first-frame",
        metavar="IMAGE|DIR|first-frame",
        help="the image each video was generated from: one image for all videos, a folder "
        "holding <video name>.png/.jpg per video, or each video's first frame",
    )
    parser.add_argument(
        "--reference",
        metavar="FILE|DIR",
        help="real continuation(s) for PSNR/SSIM/LPIPS: a video (with a single PATH) or a "
        "folder holding a video of the same name per video",
    )
    parser.add_argument(
        "--resize-reference",
        action="store_true",
        help="resize reference frames to the video's size instead of failing",
    )
    parser.add_argument("--prompt", help="text prompt for the CLIP text score")
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
        "--clip-model",
        default="ViT-B-32",
        help="open_clip architecture; other than ViT-B-32, give its checkpoint with --clip-weights",
    )
    parser.add_argument(
        "--clip-weights",
        metavar="FILE",
        help="open_clip ViT-B-32 checkpoint (else $EXSVD_WEIGHTS_CLIP_VIT_B32, ...)",
    )
    parser.add_argument(
        "--lpips-net", default="alex", choices=("alex", "vgg"), help="LPIPS backbone"
    )
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="smoke tests only: networks whose weights do not resolve run with random init; "
        "every row's *_weights column says so",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="frame pairs per optical-flow batch"
    )
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE.csv or FILE.parquet")
    parser.add_argument(
        "--series-out",
        metavar="FILE",
        help="write per-frame / pair / triple series (long format) to FILE.csv|.parquet",
    )
    parser.add_argument(
        "--set-out",
        metavar="FILE",
        help="write set-level results (FVD: whole, early, late) to FILE.csv|.parquet",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: score only the videos missing from the partial "
        "table it left beside --out (the same settings, checked)",
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
        needs = [w for w in ("reference", "prompt") if getattr(info, f"needs_{w}")]
        needs += [f"{info.backbone} weights"] if info.backbone else []
        lines.append(
            f"{name:29s} {info.family:12s} {arrows[info.higher_is_better]:14s} "
            f"{info.unit}" + (f"  [needs {', '.join(needs)}]" if needs else "")
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list_metrics:
        print(list_metrics_table())
        return 0
    if not args.paths:
        raise BenchError("eval", "no PATH given", "name video files or folders to score")
    from bench.eval_partial import Autosave, clear, keep, partial, resumed

    out, series_out, set_out = checked_options(args)
    condition = single_condition(args.condition)
    inputs, problems = found_videos(args.paths)
    if not inputs:  # nothing to score: say why before any weights are resolved
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    if args.reference and Path(args.reference).is_file() and len(inputs) > 1:
        raise BenchError(
            args.reference,
            "one reference video for several inputs",
            "give a folder with one reference per video name",
        )
    evaluator = evaluator_for(args)
    rows, series = resumed(args, out, series_out, inputs) if args.resume else ([], [])
    todo = still_to_score(evaluator, inputs, rows, args, out)
    autosave = Autosave(args, out, series_out) if out else None
    try:
        evaluate_all(evaluator, todo, problems, args, rows, series, condition, autosave)
    except (KeyboardInterrupt, Exception) as err:  # keep the videos finished so far
        what = "interrupted" if isinstance(err, KeyboardInterrupt) else "unexpected failure"
        print(f"{what} after {len(rows)} of {len(inputs)} videos; writing those"
              + (f" ({partial(out)}; --resume continues)" if out else ""), file=sys.stderr)
        report(rows, series, evaluator, partial(out), partial(series_out))
        keep(args, out)
        if isinstance(err, KeyboardInterrupt):
            return 130
        raise  # a bug, not bad input: show the traceback
    report(rows, series, evaluator, out, series_out)
    clear(out, series_out)
    report_set(evaluator, set_out)
    for line in dict.fromkeys(problems):  # one line per problem, not per metric it stopped
        print(f"error: {line}", file=sys.stderr)
    if not rows:
        print("error: no video could be evaluated", file=sys.stderr)
    return 1 if problems or not rows else 0


def checked_options(args) -> tuple[Path | None, Path | None, Path | None]:
    """The output tables (--out, --series-out, --set-out), once every option that needs no
    video has been checked."""
    from bench.common import check_at_least, check_device, check_table_path

    out = check_table_path(args.out)
    if args.resume and not out:
        raise BenchError("--resume", "continues the table of --out", "give the --out it had")
    series_out = check_table_path(args.series_out)
    set_out = check_table_path(args.set_out)
    distinct_outputs({"--out": out, "--series-out": series_out, "--set-out": set_out})
    check_at_least("--batch-size", args.batch_size, 1)
    check_device(args.device)
    for flag, given in (("--condition", args.condition), ("--reference", args.reference)):
        if given and given != "first-frame" and not Path(given).exists():
            raise BenchError(given, f"{flag} path does not exist", "check the path")
    return out, series_out, set_out


def distinct_outputs(tables: dict[str, Path | None]) -> None:
    """Each output table (and the partial table beside it) is a file of its own: one named
    twice would overwrite the other."""
    from bench.eval_partial import partial

    seen: dict[Path, str] = {}
    for flag, path in tables.items():
        for written in filter(None, (path, partial(path))):
            other = seen.setdefault(written.resolve(), flag)
            if other != flag:
                raise BenchError(path, f"is written by both {other} and {flag}",
                                 f"give {flag} a file name of its own")


def found_videos(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The videos the PATHs hold, each once, and a line per PATH that holds none; notes on
    videos in sub-folders (not read), on files that are not videos, and on videos named
    twice."""
    from metrics.video_io import find_videos, names_of, nested_video_folders, skipped_note

    problems: list[str] = []
    inputs: list[Path] = []
    for path in paths:
        try:
            inputs.extend(find_videos(path))
        except BenchError as err:
            problems.append(str(err))
            continue
        if nested := Path(path).is_dir() and nested_video_folders(Path(path)):
            print(f"note: {path}: the videos in its sub-folders {names_of(nested)} are not read "
                  "(one folder level is): give those folders too", file=sys.stderr)
        if skipped := skipped_note(path):
            print(f"note: {path}: {skipped}", file=sys.stderr)
    first: dict[Path, Path] = {}
    for path in inputs:
        first.setdefault(path.resolve(), path)
    twice = len(inputs) - len(first)
    if twice:  # named twice (a file and its folder): one row each
        print(f"note: {twice} video{'s' * (twice > 1)} given more than once; scored once",
              file=sys.stderr)
    return list(first.values()), problems


def evaluator_for(args):
    """The Evaluator of --metrics and the weight options; a metric named on purpose that is
    unavailable is an error, those a wildcard caught are a warning each."""
    from bench.common import nothing_runs
    from metrics import Evaluator

    patterns = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not patterns:
        raise BenchError("--metrics", "names no metric", "give names or wildcards, e.g. '*'")
    if args.flow_weights and args.flow == "dis":
        raise BenchError("--flow-weights", "is for RAFT, and --flow dis uses no weights",
                         "drop --flow-weights, or use --flow raft_large / raft_small / auto")
    evaluator = Evaluator(
        patterns,
        flow=args.flow,
        device=args.device,
        flow_weights=args.flow_weights,
        allow_random_weights=args.allow_random_weights,
        flow_batch_size=args.batch_size,
        clip_weights=args.clip_weights,
        clip_model=args.clip_model,
        lpips_net=args.lpips_net,
        with_reference=bool(args.reference),
        with_prompt=bool(args.prompt),
        resize_reference=args.resize_reference,
    )
    asked = [name for name in evaluator.unavailable if name in patterns]
    if asked:  # named on purpose, not caught by a wildcard: a setup error, like its input
        reason = nothing_runs(evaluator.unavailable[asked[0]])
        raise BenchError(", ".join(asked), f"unavailable: {reason}")
    by_reason: dict[str, list[str]] = {}
    for name, reason in evaluator.unavailable.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        print(f"warning: {', '.join(names)} unavailable: {reason}", file=sys.stderr)
    return evaluator


def still_to_score(evaluator, inputs: list[Path], rows: list[dict], args, out) -> list[Path]:
    """The inputs not among ``rows`` (those a resumed table holds); set-level metrics cannot
    resume, as the videos scored before kept no features."""
    from bench.eval_partial import partial

    done = {row["video"] for row in rows}
    todo = [path for path in inputs if str(path) not in done]
    whole = [name for name, metric in evaluator.metrics.items()
             if metric.info.set_level and name not in evaluator.unavailable]
    if done and whole:
        raise BenchError("--resume", f"{', '.join(whole)} need every video's features, and "
                         "the videos scored before kept none", "rerun without --resume, or "
                         "leave the set-level metrics out of --metrics")
    if done:
        print(f"resuming: {len(done)} videos scored before, {len(todo)} to go", file=sys.stderr)
    elif out and partial(out).is_file() and not args.resume:
        print(f"note: {partial(out)} holds the videos an interrupted run finished; --resume "
              "scores only the rest", file=sys.stderr)
    return todo


def matching_file(folder: Path, video: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """The one file in ``folder`` named like ``video`` (any of ``suffixes``; for a reference,
    a folder of frames too); none or several is an error."""
    stem = video.stem if video.is_file() else video.name
    found = [folder / (stem + suffix) for suffix in suffixes if (folder / (stem + suffix)).exists()]
    if what == "reference" and (folder / stem).is_dir():  # a folder of frames, like the input
        found.append(folder / stem)
    if len(found) > 1:
        raise BenchError(video, f"{len(found)} {what}s named like it in {folder}: "
                         f"{', '.join(f.name for f in found)}", "keep one of them")
    if not found:
        raise BenchError(
            video,
            f"no {what} named {stem}{{{','.join(suffixes)}}} in {folder}",
            f"add one or pass a single {what} file",
        )
    return found[0]


def single_condition(given: str):
    """The --condition image (a one-frame Video) when one file is given for all videos (read
    once, up front, so a wrong file is a setup error), else None."""
    from metrics.video_io import IMAGE_SUFFIXES, read_video

    if given == "first-frame" or Path(given).is_dir():
        return None
    if Path(given).suffix.lower() not in IMAGE_SUFFIXES:
        raise BenchError(
            given,
            f"--condition is not an image ({', '.join(IMAGE_SUFFIXES)})",
            "give a .png or .jpg image, a folder of them named like the videos, or first-frame",
        )
    try:
        return read_video(given)
    except BenchError as err:
        raise BenchError(given, f"--condition: {err.problem}", err.fix) from None


@dataclass
class Paired:
    """What one input is scored against, and what its row says of it."""

    condition: object = None  # the image, uint8 [H, W, 3]; None: the video's first frame
    reference: object = None  # a Video
    missing: dict = field(default_factory=dict)  # "condition"/"reference": why it is not there
    condition_file: str = "first-frame"  # the file read; where it was looked for if none
    reference_file: str = ""
    notes: list[str] = field(default_factory=list)  # the reader's, on either

    def read(self, what: str, path: Path):
        """``path`` read as the ``what`` (its file and the reader's notes recorded)."""
        from metrics.video_io import read_video

        video = read_video(path)
        setattr(self, f"{what}_file", str(path))
        self.notes += [f"{what}: {note}" for note in video.notes]
        return video


def paired_inputs(path: Path, args, condition=None) -> Paired:
    """The condition image and reference video for one input, per --condition/--reference
    (``condition``: the single --condition image, already read), and the per-video files not
    found or unreadable: only the metrics that need one go without."""
    from metrics.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    paired = Paired(condition_file=args.condition)
    try:
        if condition is not None:
            paired.condition = condition.frames[0]
            paired.notes += [f"condition: {note}" for note in condition.notes]
        elif args.condition != "first-frame":
            found = matching_file(Path(args.condition), path, IMAGE_SUFFIXES, "condition image")
            paired.condition = paired.read("condition", found).frames[0]
    except BenchError as err:
        paired.missing["condition"] = MetricInputError(err.subject, err.problem, err.fix)
    try:
        if args.reference:
            source = Path(args.reference)
            if source.is_dir():
                source = matching_file(source, path, (*VIDEO_SUFFIXES, ".npy", ".npz"),
                                       "reference")
            paired.reference = paired.read("reference", source)
    except BenchError as err:
        paired.missing["reference"] = MetricInputError(err.subject, err.problem, err.fix)
    return paired


def evaluate_all(evaluator, inputs, problems, args, rows, series, condition=None,
                 after_each=None) -> None:
    """Evaluate each input into ``rows`` / ``series`` (filled as it goes, so an interruption
    keeps the finished videos; ``after_each(rows, series)`` is called after every video); a
    bad video becomes a reported problem, the others still run."""
    from tqdm import tqdm

    from metrics.video_io import read_video

    for path in tqdm(inputs, desc="eval", unit="video", file=sys.stderr, disable=None):
        try:
            paired = paired_inputs(path, args, condition)
            result = evaluator(read_video(path), condition=paired.condition,
                               reference=paired.reference, prompt=args.prompt,
                               missing=paired.missing)
        except BenchError as err:
            problems.append(str(err))
            rows.append({"video": str(path), "error": str(err)})
        else:
            problems.extend(result.errors.values())
            rows.append(_row(result, paired))
            for metric, values in result.series.items():
                series.extend(
                    {"video": result.source, "metric": metric, "index": i, "value": float(v)}
                    for i, v in enumerate(values)
                )
        if after_each:
            after_each(rows, series)


def _row(result, paired: Paired) -> dict:
    """One video's row of the table."""
    return {
        "video": result.source,
        "frames": result.num_frames,
        "height": result.height,
        "width": result.width,
        "fps": result.fps,
        **result.scalars,
        "error": "; ".join(dict.fromkeys(result.errors.values())),  # NaN says which
        "unavailable": "; ".join(f"{k}: {v}" for k, v in result.unavailable.items()),
        "notes": "; ".join([*result.notes, *paired.notes]),
        "condition": paired.condition_file,
        "reference": paired.reference_file,
        **result.provenance,
    }


def report(rows, series, evaluator, out, series_out) -> None:
    """Print the table (first: a write that fails keeps it on screen), then write it."""
    import pandas as pd

    from bench.common import write_table
    from bench.eval_partial import SERIES_COLUMNS

    if not rows:
        return
    table = pd.DataFrame(rows)
    shown = table[["video", *[n for n in evaluator.names if n in table]]].copy()
    shown["video"] = shown["video"].map(lambda p: Path(p).name)
    for name in evaluator.unavailable:
        shown[name] = "unavailable"
    print(shown.to_string(index=False, float_format=_fmt))
    for key, label in evaluator.provenance.items():
        if key.endswith("_weights") or key in ("flow_backend", "device"):
            print(f"{key}: {label}")
    if out:
        write_table(table, out)
    if series_out:
        write_table(pd.DataFrame(series, columns=SERIES_COLUMNS), series_out)
    written = [str(path) for path in (out, series_out) if path]
    if written:
        print(f"wrote {' and '.join(written)}")


def report_set(evaluator, set_out) -> None:
    """Print (and write) the set-level results; FVD's small-set warning becomes one line."""
    import warnings

    import pandas as pd

    from bench.common import write_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = evaluator.compute_set()
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if not results:
        if set_out:
            print(f"note: no set-level metric was computed (--metrics); {set_out} not written",
                  file=sys.stderr)
        return
    print("set-level: " + ", ".join(f"{k} {_fmt(v)}" for k, v in results.items()))
    if set_out:
        table = pd.DataFrame([{**results, **evaluator.provenance}])
        write_table(table, set_out)
        print(f"wrote {set_out}")


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"
