"""Aggregation: the per-video metric records as tidy tables in ``results/`` (one row per arm,
sample, seed and metric; per-frame series; unavailable metrics), plus the statistics of
``reports.stats``: a summary per arm and metric and paired comparisons against exsvd. The report
rewrites those two from the same table (``bench report``), so its unit is the one that checks
them."""

from __future__ import annotations

import json
import math

from bench.run_cache import Unit, unit_key
from bench.stages.context import Context, made_from, run_units

PER_VIDEO = [
    "arm",
    "sample",
    "seed",
    "metric",
    "family",
    "value",
    "higher_is_better",
    "status",
    "detail",
    "provenance",
]
SERIES = ["arm", "sample", "seed", "metric", "index", "value"]
RESULTS = ("per_video.parquet", "per_video.csv", "series.parquet", "unavailable.csv")
STATISTICS = ("summary.csv", "paired.csv")


def run(ctx: Context, evaluated: list[Unit]) -> list[Unit]:
    key = unit_key("aggregate", made_from(ctx, evaluated))
    unit = Unit(
        "aggregate",
        "results",
        "",
        key,
        ctx.path("results", ".done.json"),
        tuple(ctx.path("results", name) for name in RESULTS),
    )
    run_units(ctx, "aggregate", [unit], lambda unit: write_results(unit, evaluated))
    return [unit]


def tables(evaluated: list[Unit]):
    """per_video, series and unavailable tables from the evaluation units' outputs, and each
    arm's frame count."""
    import pandas as pd

    from metrics.evaluator import METRICS

    rows, series, unavailable, frames = [], [], {}, {}
    for unit in evaluated:
        result = json.loads(unit.outputs[0].read_text())
        ids = {"arm": result["arm"], "sample": result["sample"], "seed": result["seed"]}
        frames[result["arm"]] = result["frames"]
        provenance = json.dumps(result["provenance"], sort_keys=True)
        for metric in result["metrics"]:
            info = METRICS.get(metric).info
            status, detail = "ok", ""
            if metric in result["unavailable"]:
                status, detail = "unavailable", result["unavailable"][metric]
                unavailable[metric] = detail
            elif metric in result["errors"]:
                status, detail = "error", result["errors"][metric]
            value = result["scalars"].get(metric, math.nan) if status == "ok" else math.nan
            rows.append(
                {
                    **ids,
                    "metric": metric,
                    "family": info.family,
                    "value": float(value),
                    "higher_is_better": info.higher_is_better,
                    "status": status,
                    "detail": detail,
                    "provenance": provenance,
                }
            )
        for metric, values in result["series"].items():
            series.extend(
                {**ids, "metric": metric, "index": i, "value": v} for i, v in enumerate(values)
            )
    per_video = pd.DataFrame(rows, columns=PER_VIDEO)
    per_video["higher_is_better"] = per_video["higher_is_better"].astype("boolean")
    missing = pd.DataFrame(sorted(unavailable.items()), columns=["metric", "reason"])
    return per_video, pd.DataFrame(series, columns=SERIES), missing, frames


def write_results(unit: Unit, evaluated: list[Unit]) -> dict:
    from bench.common import write_table
    from reports.stats import compare, summarize
    from reports.tables import other_length

    per_video, series, unavailable, frames = tables(evaluated)
    folder = unit.record.parent
    write_table(per_video, folder / "per_video.parquet")
    write_table(per_video, folder / "per_video.csv")
    write_table(series, folder / "series.parquet")
    write_table(unavailable, folder / "unavailable.csv")
    write_table(summarize(per_video), folder / "summary.csv")
    untested = other_length(frames, "exsvd")  # as the report: shown, not tested
    write_table(compare(per_video, baseline="exsvd", exclude=untested), folder / "paired.csv")
    return {}
