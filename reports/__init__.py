"""The report of a ``bench run`` directory: statistics (``reports.stats``), figures, tables and
one self-contained HTML page, rebuilt from the stored results alone.

>>> from pathlib import Path
>>> from reports import build_report
>>> build_report(Path("runs/default"))  # -> runs/default/report/index.html
"""

from __future__ import annotations

from pathlib import Path


def build_report(run_dir: Path, in_run: bool = False) -> Path:
    """Rewrite ``results/summary.csv``, ``results/paired.csv`` and ``report/`` of ``run_dir``;
    return ``report/index.html`` (``in_run``: built as ``bench run``'s last stage). Imported
    lazily, so ``reports.stats`` stays light."""
    from reports.build import build_report as build

    return build(run_dir, in_run)


__all__ = ["build_report"]
