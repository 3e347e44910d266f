"""Statistics on the tidy per-video table (``results/per_video.parquet``): a summary per arm and
metric with percentile-bootstrap CIs, and paired comparisons of every arm against a baseline.

A video is one (sample, seed); rows whose value is NaN (status not ok) count as missing. Each
(arm, metric) group draws from its own generator, seeded by ``seed`` and the group's names, so
adding an arm or a metric never changes the others' intervals.

Paired comparisons: rows are matched on (sample, seed); the difference is arm - baseline.
- ``p_value``: two-sided Wilcoxon signed-rank test (zero differences dropped, scipy's
  ``zero_method="wilcox"``); NaN with fewer than 2 pairs, 1 when every difference is zero.
- ``p_holm``: Holm-Bonferroni over the family "all arms against the baseline on one metric"
  (metrics answer different questions, so each metric is its own family).
- ``effect_size``: matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-), R+ / R- the
  rank sums of the positive / negative differences: +1 when the arm is higher on every pair.
- ``better``: the arm's mean difference points the metric's better way (NA for descriptive
  metrics or no difference), whether significant or not; ``significant`` is p_holm < alpha.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from scipy import stats

SUMMARY_COLUMNS = [
    "arm",
    "metric",
    "family",
    "higher_is_better",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "n_missing",
]
PAIRED_COLUMNS = [
    "arm",
    "metric",
    "family",
    "higher_is_better",
    "baseline",
    "n_pairs",
    "delta_mean",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "effect_size",
    "significant",
    "better",
]
PAIR_KEYS = ["sample", "seed"]


def group_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator for one group, independent of which other groups exist."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def bootstrap_mean_ci(
    values: np.ndarray, rng: np.random.Generator, n_boot: int, level: float
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (NaN for fewer than 2 values); the values are
    sorted first, so the interval does not depend on the order of the rows."""
    if len(values) < 2:
        return np.nan, np.nan
    values = np.sort(values)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarize(
    per_video: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean, percentile-bootstrap CI over videos, n and missing count per (arm, metric)."""
    rows = []
    for (arm, metric), group in per_video.groupby(["arm", "metric"], sort=False):
        values = group["value"].to_numpy(float)
        values = values[np.isfinite(values)]
        low, high = bootstrap_mean_ci(values, group_rng(seed, arm, metric), n_boot, level)
        rows.append(
            {
                "arm": arm,
                "metric": metric,
                "family": group["family"].iloc[0],
                "higher_is_better": group["higher_is_better"].iloc[0],
                "mean": values.mean() if len(values) else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n": len(values),
                "n_missing": len(group) - len(values),
            }
        )
    return _typed(pd.DataFrame(rows, columns=SUMMARY_COLUMNS))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; NaN entries are left out of the family and stay NaN."""
    p = np.asarray(p_values, float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p; NaN below 2 pairs, 1 when all differences are 0."""
    if len(diffs) < 2:
        return np.nan
    if not np.any(diffs):
        return 1.0
    return float(stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)


def rank_biserial(diffs: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of the non-zero differences (0 if none)."""
    nonzero = diffs[diffs != 0]
    if not len(nonzero):
        return 0.0 if len(diffs) else np.nan
    ranks = stats.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def compare(
    per_video: pd.DataFrame,
    baseline: str = "exsvd",
    *,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every other arm against ``baseline`` per metric, paired on (sample, seed). A run without
    the baseline gives an empty table whose ``attrs["note"]`` says why."""
    if baseline not in set(per_video["arm"]):
        empty = _typed(pd.DataFrame(columns=PAIRED_COLUMNS))
        empty.attrs["note"] = f"no paired comparison: the baseline arm {baseline!r} is missing"
        return empty
    base = per_video[per_video["arm"] == baseline][["metric", *PAIR_KEYS, "value"]]
    rows = []
    others = per_video[per_video["arm"] != baseline]
    for (arm, metric), group in others.groupby(["arm", "metric"], sort=False):
        pairs = group.merge(
            base[base["metric"] == metric], on=[*PAIR_KEYS, "metric"], suffixes=("", "_base")
        )
        diffs = (pairs["value"] - pairs["value_base"]).to_numpy(float)
        diffs = diffs[np.isfinite(diffs)]
        low, high = bootstrap_mean_ci(diffs, group_rng(seed, arm, metric, baseline), n_boot, level)
        delta = diffs.mean() if len(diffs) else np.nan
        rows.append(
            {
                "arm": arm,
                "metric": metric,
                "family": group["family"].iloc[0],
                "higher_is_better": group["higher_is_better"].iloc[0],
                "baseline": baseline,
                "n_pairs": len(diffs),
                "delta_mean": delta,
                "ci_low": low,
                "ci_high": high,
                "p_value": wilcoxon_p(diffs),
                "effect_size": rank_biserial(diffs),
                "better": _better(delta, group["higher_is_better"].iloc[0]),
            }
        )
    table = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for _, index in table.groupby("metric", sort=False).groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p_value"])
    table["significant"] = table["p_holm"] < alpha
    return _typed(table)


def _better(delta: float, higher_is_better) -> bool | None:
    if pd.isna(higher_is_better) or not np.isfinite(delta) or delta == 0:
        return None
    return bool(delta > 0) == bool(higher_is_better)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes, also for empty tables: nullable booleans, integer counts, float stats."""
    for column in ("higher_is_better", "significant", "better"):
        if column in table:
            table[column] = table[column].astype("boolean")
    for column in ("n", "n_missing", "n_pairs"):
        if column in table:
            table[column] = table[column].astype(int)
    for column in ("mean", "delta_mean", "ci_low", "ci_high", "p_value", "p_holm", "effect_size"):
        if column in table:
            table[column] = table[column].astype(float)
    return table
