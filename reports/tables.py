"""The report's tables: the main ablation table and the paired deltas, per metric family, as
rows for the template and as wide CSVs for papers; and the list of metrics that did not run."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

import numpy as np
import pandas as pd

from reports.figures import arrow, mark

FAMILIES = ("flicker", "smoothness", "motion", "consistency", "quality")


def fmt(value, signed: bool = False) -> str:
    """Three significant digits, trailing zeros kept, in plain digits from 1e-6 to 1e6 (whole
    numbers from 1000 on), scientific outside; a sign when ``signed``; '–' for NaN."""
    if value is None or pd.isna(value):
        return "–"
    sign, size = "+" if signed else "", abs(value)
    if 1000 <= size < 1e6:
        return f"{value:{sign}.0f}"
    if 1e-6 <= size < 1000 or size == 0:
        return format(Decimal(f"{value:.2e}"), f"{sign}f")
    return f"{value:{sign}.2e}"


def ci_text(low, high, signed: bool = False) -> str:
    """'[low, high]', or '' when the interval is undefined (fewer than 2 values)."""
    if pd.isna(low) and pd.isna(high):
        return ""
    return f"[{fmt(low, signed)}, {fmt(high, signed)}]"


def families(table: pd.DataFrame) -> list[str]:
    """The families present, in the order the README lists them, unknown ones last."""
    present = list(pd.unique(table["family"]))
    return [f for f in FAMILIES if f in present] + [f for f in present if f not in FAMILIES]


def best_arms(part: pd.DataFrame) -> set[str]:
    """Arms with the best mean of one metric (ties included); none for descriptive metrics."""
    direction = part["higher_is_better"].iloc[0]
    means = part.set_index("arm")["mean"].astype(float).dropna()
    if pd.isna(direction) or means.empty:
        return set()
    best = means.max() if direction else means.min()
    return set(means.index[np.isclose(means, best, rtol=1e-12, atol=0)])


def _metric_columns(part: pd.DataFrame) -> list[dict]:
    first = part.drop_duplicates("metric")
    return [
        {"name": m, "arrow": arrow(h)}
        for m, h in zip(first["metric"], first["higher_is_better"], strict=True)
    ]


def other_length(frames: dict[str, int], baseline: str) -> list[str]:
    """Arms run at another frame count than the baseline: their means are over other frames,
    so they are shown but not compared with it (none when the baseline's count is unknown)."""
    same = frames.get(baseline)
    return [arm for arm, count in frames.items() if same is not None and count != same]


def arm_labels(frames: dict[str, int], baseline: str) -> dict[str, str]:
    """Each arm's label: its name, and its frame count when ``other_length``."""
    other = other_length(frames, baseline)
    return {arm: f"{arm} ({n} frames)" if arm in other else arm for arm, n in frames.items()}


def untested_text(frames: dict[str, int], baseline: str) -> str:
    """One sentence per ``other_length`` arm, e.g. 'svd runs at 8 frames: it is shown, not
    tested against exsvd.'"""
    return " ".join(
        f"{arm} runs at {frames[arm]} frames: it is shown, not tested against {baseline}."
        for arm in other_length(frames, baseline)
    )


def _cell(metric: str, best: bool, row, test) -> dict:
    """One main-table cell: mean, CI, counts, and the mark and p of its paired test."""
    if row is None:
        return {"metric": metric, "best": best, "mean": "–", "ci": "", "n": "", "mark": "",
                "p_holm": ""}
    return {
        "metric": metric,
        "best": best,
        "mean": fmt(row["mean"]),
        "ci": ci_text(row["ci_low"], row["ci_high"]),
        "n": f"n = {row['n']}, missing {row['n_missing']}",
        "mark": mark(test),
        "p_holm": fmt(test["p_holm"]) if test is not None else "",
    }


def _lookup(table: pd.DataFrame | None, key):
    return table.loc[key] if table is not None and key in table.index else None


def main_blocks(
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    arms: list[str],
    baseline: str,
    labels: dict[str, str] | None = None,
    unavailable: Collection[str] = (),
):
    """Per family: metric columns, and one row per arm of cells (mean, CI, best, mark); arms
    labelled with another length (``arm_labels``) are left out of "best". Metrics with no mean
    at all get no column but a line in ``empty`` (``unavailable``: those whose weights were
    not found)."""
    labels = labels or {}
    other = {arm for arm in arms if labels.get(arm, arm) != arm}
    stats = summary.set_index(["arm", "metric"])
    versus = paired.set_index(["arm", "metric"]) if len(paired) else None
    blocks = []
    for family in families(summary):
        part = summary[summary["family"] == family]
        scored = set(part.dropna(subset=["mean"])["metric"])
        columns = [c for c in _metric_columns(part) if c["name"] in scored]
        same = part[~part["arm"].isin(other)]
        best = {c["name"]: best_arms(same[same["metric"] == c["name"]]) for c in columns}
        rows = [
            {
                "arm": arm,
                "label": labels.get(arm, arm),
                "baseline": arm == baseline,
                "cells": [
                    _cell(m, arm in best[m], _lookup(stats, (arm, m)), _lookup(versus, (arm, m)))
                    for m in (c["name"] for c in columns)
                ],
            }
            for arm in arms
        ]
        empty = [c["name"] for c in _metric_columns(part) if c["name"] not in scored]
        blocks.append({"family": family, "metrics": columns, "rows": rows,
                       "empty": empty_text(empty, unavailable)})
    return blocks


def empty_text(metrics: list[str], unavailable: Collection[str]) -> str:
    """'not computed: a, b (weights unavailable; see Unavailable)', '' for no metrics."""
    if not metrics:
        return ""
    why = "weights unavailable; " if set(metrics) <= set(unavailable) else ""
    return f"not computed: {', '.join(metrics)} ({why}see Unavailable)"


def _delta_cell(metric: str, test) -> dict:
    if test is None or pd.isna(test["delta_mean"]):
        return {"metric": metric, "delta": "–", "mark": "", "ci": ""}
    return {
        "metric": metric,
        "delta": fmt(test["delta_mean"], signed=True),
        "ci": ci_text(test["ci_low"], test["ci_high"], signed=True),
        "p_holm": fmt(test["p_holm"]),
        "effect": fmt(test["effect_size"], signed=True),
        "n": int(test["n_pairs"]),
        "mark": mark(test),
    }


def delta_blocks(paired: pd.DataFrame, arms: list[str], labels: dict[str, str] | None = None):
    """Per family: metric columns with at least one difference, and one row per arm in
    ``arms`` of cells (delta, CI, Holm p, effect size, mark); '–' where an arm was not
    compared."""
    labels = labels or {}
    blocks = []
    for family in families(paired) if len(paired) else []:
        part = paired[paired["family"] == family]
        columns = _metric_columns(part.dropna(subset=["delta_mean"]))
        if not columns:
            continue
        tests = part.set_index(["arm", "metric"])
        names = [c["name"] for c in columns]
        rows = [
            {
                "arm": arm,
                "label": labels.get(arm, arm),
                "cells": [_delta_cell(m, _lookup(tests, (arm, m))) for m in names],
            }
            for arm in arms
        ]
        blocks.append({"family": family, "metrics": columns, "rows": rows})
    return blocks


def main_csv(
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    arms: list[str],
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Arms x metrics (families in order), each cell 'mean [low, high]' and the significance
    mark, for papers; arms named by their ``labels``."""
    marks = {(row["arm"], row["metric"]): mark(row) for _, row in paired.iterrows()}
    ordered = pd.concat([summary[summary["family"] == f] for f in families(summary)])
    cells = ordered.assign(
        cell=[
            " ".join(filter(None, [fmt(r["mean"]), ci_text(r["ci_low"], r["ci_high"])]))
            + marks.get((r["arm"], r["metric"]), "")
            for _, r in ordered.iterrows()
        ],
        header=[
            f"{m} {arrow(h)}".strip()
            for m, h in zip(ordered["metric"], ordered["higher_is_better"], strict=True)
        ],
    )
    wide = cells.pivot(index="arm", columns="header", values="cell")
    order = list(pd.unique(cells["header"]))
    table = wide.reindex(index=arms, columns=order).rename_axis(columns=None).reset_index()
    table["arm"] = [(labels or {}).get(arm, arm) for arm in table["arm"]]
    return table


def problems(per_video: pd.DataFrame, unavailable: pd.DataFrame | None) -> list[dict]:
    """Metrics that did not score, with why: unavailable ones (no weights) and errors per arm."""
    rows = []
    if unavailable is not None:
        rows += [
            {"metric": metric, "arms": "all", "status": "unavailable", "count": "", "reason": why}
            for metric, why in zip(unavailable["metric"], unavailable["reason"], strict=True)
        ]
    listed = {row["metric"] for row in rows}
    bad = per_video[(per_video["status"] != "ok") & ~per_video["metric"].isin(listed)]
    for (metric, status), group in bad.groupby(["metric", "status"], sort=False):
        total = int((per_video["metric"] == metric).sum())
        rows.append(
            {
                "metric": metric,
                "arms": ", ".join(pd.unique(group["arm"])),
                "status": status,
                "count": f"{len(group)} of {total} videos",
                "reason": "; ".join(pd.unique(group["detail"].fillna("")))[:500]
                or "no detail recorded",
            }
        )
    return rows


def shared_problems(rows: list[dict]) -> list[dict]:
    """``problems`` for reading: metrics that failed alike (status, arms, videos and why) share
    one row, their names in ``metrics`` (the CLIP family's six metrics say their reason once)."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for row in rows:
        key = (row["status"], row["arms"], row["count"], row["reason"])
        groups.setdefault(key, []).append(row["metric"])
    return [
        {"metrics": metrics, "status": status, "arms": arms, "count": count, "reason": reason}
        for (status, arms, count, reason), metrics in groups.items()
    ]
