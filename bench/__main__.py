"""``python -m bench``: one sub-command per stage of the benchmark."""

from __future__ import annotations

import argparse
import signal
import sys

from bench import eval_cmd, perf_cmd, report_cmd, run_cmd, weights_cmd
from metrics.errors import BenchError

COMMANDS = (run_cmd, report_cmd, eval_cmd, weights_cmd, perf_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "exsvd-bench: which parts of ExVideo's post-tuning of Stable Video Diffusion matter? "
            "Run the ablation (post-tune, generate, evaluate, report), evaluate any videos on "
            "four metric families (flicker, smoothness, condition consistency, quality), "
            "manage pretrained weights, benchmark speed and memory."
        ),
        epilog="Run 'python -m bench COMMAND --help' for the options of each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; results already written are kept", file=sys.stderr)
        return 130


def interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_as_interrupted() -> None:
    """SIGTERM (a scheduler's stop, a launcher's) and SIGHUP (the terminal or ssh session gone)
    end bench as Ctrl-C does: what is written is kept, and the children it started, which run
    in sessions of their own and get neither signal, are stopped. A signal ignored from the
    start stays ignored: under ``nohup`` the run goes on when the terminal goes."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, interrupt)


if __name__ == "__main__":
    stop_as_interrupted()
    sys.exit(main())
