"""The report: ``reports.build_report`` on the run directory (``report/index.html``, figures,
tables, and the statistics in ``results/``), rebuilt when the results, the tuned arms, the
videos or the config change."""

from __future__ import annotations

from pathlib import Path

from bench.run_cache import Unit, unit_key
from bench.stages.aggregate import STATISTICS
from bench.stages.context import Context, made_from, run_units


def run(ctx: Context, upstream: list[Unit]) -> list[Unit]:
    """``upstream``: the units of every earlier stage whose outputs the report shows."""
    key = unit_key("report", ctx.config.digest(), made_from(ctx, upstream))
    outputs = (ctx.path("report"), *(ctx.path("results", name) for name in STATISTICS))
    unit = Unit("report", "report", "", key, ctx.path("report", ".done.json"), outputs)
    run_units(ctx, "report", [unit], lambda unit: build(ctx))
    return [unit]


def build(ctx: Context) -> dict:
    from reports import build_report

    build_report(ctx.run_dir, in_run=True)
    return {}


def refresh_record(run_dir: Path) -> None:
    """After ``bench report`` rebuilt the report by hand: keep the report unit done (same key,
    new checksums), so the next ``bench run`` does not rebuild it again."""
    from bench.run_cache import Checksums, read_record, write_record

    record_path = run_dir / "report" / ".done.json"
    record = read_record(record_path)
    if not record or "key" not in record:
        return
    outputs = (run_dir / "report", *(run_dir / "results" / name for name in STATISTICS))
    unit = Unit("report", "report", "", record["key"], record_path, outputs)
    extra = {k: v for k, v in record.items() if k not in ("unit", "key", "outputs")}
    checksums = Checksums(run_dir / ".cache")
    write_record(unit, checksums, **extra)
    checksums.save()
