"""``bench report``: rebuild the tables, figures and HTML page of a run from its stored files."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "rebuild a run's statistics, figures and self-contained HTML report from stored results"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "report",
        help=HELP,
        description=HELP + ". Reads only RUN_DIR's stored files (results/per_video.parquet, "
        "series.parquet, unavailable.csv, generate/<arm>/*.mp4 and manifests, tune/<arm>/loss.csv, "
        "run.json, timings.json; all but the first optional: missing or damaged, one is left out "
        "with a note) and rewrites results/summary.csv, results/paired.csv and report/: "
        "index.html, figures/*.png|svg|gif, tables/*.csv.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the --out folder of a run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bench.stages.report import refresh_record
    from reports import build_report

    index = build_report(args.run_dir)
    refresh_record(args.run_dir)
    print(f"wrote {index}")
    return 0
