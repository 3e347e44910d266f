"""The report's tables: the main ablation table and the paired deltas, per metric family, as
rows for the template and as wide CSVs for papers; and the list of metrics that did not run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.figures import arrow, mark

FAMILIES = ("flicker", "smoothness", "motion", "consistency", "quality")


def fmt(value, signed: bool = False) -> str:
    """Three significant digits; '–' for NaN."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:+.3g}" if signed else f"{value:.3g}"


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


def arm_labels(frames: dict[str, int], baseline: str) -> dict[str, str]:
    """Each arm's row label: its name, and its frame count when it differs from the baseline's
    (an arm run at another length, e.g. svd at L, is not compared like for like)."""
    same = frames.get(baseline)
    return {
        arm: arm if same is None or count == same else f"{arm} ({count} frames)"
        for arm, count in frames.items()
    }


def main_blocks(
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    arms: list[str],
    baseline: str,
    labels: dict[str, str] | None = None,
):
    """Per family: metric columns, and one row per arm of cells (mean, CI, best, mark); arms
    labelled with another length (``arm_labels``) are left out of "best"."""
    labels = labels or {}
    other_length = {arm for arm in arms if labels.get(arm, arm) != arm}
    summary_same = summary[~summary["arm"].isin(other_length)]
    stats = summary.set_index(["arm", "metric"])
    versus = paired.set_index(["arm", "metric"]) if len(paired) else None
    blocks = []
    for family in families(summary):
        part = summary[summary["family"] == family]
        columns = _metric_columns(part)
        same = summary_same[summary_same["family"] == family]
        best = {c["name"]: best_arms(same[same["metric"] == c["name"]]) for c in columns}
        rows = []
        for arm in arms:
            cells = []
            for column in columns:
                key = (arm, column["name"])
                row = stats.loc[key] if key in stats.index else None
                test = versus.loc[key] if versus is not None and key in versus.index else None
                cells.append(
                    {
                        "metric": column["name"],
                        "mean": fmt(row["mean"]) if row is not None else "–",
                        "ci": ci_text(row["ci_low"], row["ci_high"]) if row is not None else "",
                        "n": f"n = {row['n']}, missing {row['n_missing']}"
                        if row is not None
                        else "",
                        "best": arm in best[column["name"]],
                        "mark": mark(test),
                        "p_holm": fmt(test["p_holm"]) if test is not None else "",
                    }
                )
            rows.append(
                {"arm": arm, "label": labels.get(arm, arm), "baseline": arm == baseline,
                 "cells": cells}
            )
        blocks.append({"family": family, "metrics": columns, "rows": rows})
    return blocks


def delta_blocks(paired: pd.DataFrame, labels: dict[str, str] | None = None):
    """Per family: one row per arm of cells (delta, CI, Holm p, effect size, mark)."""
    labels = labels or {}
    blocks = []
    for family in families(paired) if len(paired) else []:
        part = paired[paired["family"] == family]
        columns = _metric_columns(part)
        tests = part.set_index(["arm", "metric"])
        rows = []
        for arm in pd.unique(part["arm"]):
            cells = []
            for column in columns:
                key = (arm, column["name"])
                test = tests.loc[key] if key in tests.index else None
                if test is None:
                    cells.append({"metric": column["name"], "delta": "–"})
                    continue
                cells.append(
                    {
                        "metric": column["name"],
                        "delta": fmt(test["delta_mean"], signed=True),
                        "ci": ci_text(test["ci_low"], test["ci_high"], signed=True),
                        "p_holm": fmt(test["p_holm"]),
                        "effect": fmt(test["effect_size"], signed=True),
                        "n": int(test["n_pairs"]),
                        "mark": mark(test),
                    }
                )
            rows.append({"arm": arm, "label": labels.get(arm, arm), "cells": cells})
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
