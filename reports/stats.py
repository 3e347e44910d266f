"""Statistics on the tidy per-video table (``results/per_video.parquet``): a summary per arm and
metric with percentile-bootstrap CIs, and paired comparisons of every arm against a baseline.

A video is one (sample, seed); rows whose value is NaN (status not ok) count as missing. The
independent unit is the condition (sample): the noise seeds of one condition share its image,
so they are not independent replicates. Summary CIs resample conditions (with all their
videos); paired comparisons first average each condition's seeds. Each (arm, metric) group
draws from its own generator, seeded by ``seed`` and the group's names, so adding an arm or a
metric never changes the others' intervals.

Paired comparisons: per condition, the arm's mean over its seeds minus the baseline's, on the
conditions both scored; ``n_pairs`` counts conditions.
- ``p_value``: two-sided Wilcoxon signed-rank test (zero differences dropped, scipy's
  ``zero_method="wilcox"``); NaN with fewer than 2 pairs, 1 when every difference is zero.
- ``p_holm``: Holm-Bonferroni over the family "all arms against the baseline on one metric"
  (metrics answer different questions, so each metric is its own family).
- ``effect_size``: matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-), R+ / R- the
  rank sums of the positive / negative differences: +1 when the arm is higher on every pair.
- ``better``: the direction the test measures, the sign of the effect size (R+ - R-), points
  the metric's better way (NA for descriptive metrics or no difference), whether significant or
  not; ``significant`` is p_holm < alpha. (A few extreme pairs can pull ``delta_mean`` the
  other way; the mark follows the test.)
- ``attrs["note"]``: set when the table cannot show a difference at all (no baseline, no other
  arm, or too few conditions for any corrected p to reach alpha).
- ``exclude``: arms not compared at all (run at another length than the baseline, their means
  are over other frames): they have no rows and are not in Holm's family.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection

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


def group_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator for one group, independent of which other groups exist."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def bootstrap_mean_ci(
    values: np.ndarray, rng: np.random.Generator, n_boot: int, level: float,
    clusters: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling whole ``clusters`` (default: each value
    its own); NaN for fewer than 2 clusters. Clusters are ordered by (mean, label) first, so the
    interval does not depend on the order of the rows."""
    clusters = np.arange(len(values)) if clusters is None else np.asarray(clusters)
    labels, index = np.unique(clusters, return_inverse=True)
    if len(labels) < 2:
        return np.nan, np.nan
    sums = np.bincount(index, weights=values, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels)).astype(float)
    order = np.lexsort((labels.astype(str), sums / counts))
    sums, counts = sums[order], counts[order]
    picks = rng.integers(0, len(labels), (n_boot, len(labels)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def condition_means(group: pd.DataFrame) -> pd.Series:
    """Each condition's mean over its scored seeds (conditions with none left out)."""
    scored = group[np.isfinite(group["value"].to_numpy(float))]
    return scored.groupby("sample", sort=True)["value"].mean()


def smallest_holm_p(pairs: int, arms: int) -> float:
    """The smallest Holm-corrected p any of ``arms`` comparisons on ``pairs`` pairs can reach:
    every pair one way, the test's extreme, times the family size."""
    return min(1.0, arms * wilcoxon_p(np.arange(1.0, pairs + 1))) if pairs >= 2 else 1.0


def summarize(
    per_video: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean, percentile-bootstrap CI over videos, n and missing count per (arm, metric)."""
    rows = []
    for (arm, metric), group in per_video.groupby(["arm", "metric"], sort=False):
        scored = group[np.isfinite(group["value"].to_numpy(float))]
        values = scored["value"].to_numpy(float)
        low, high = bootstrap_mean_ci(
            values, group_rng(seed, arm, metric), n_boot, level, scored["sample"].to_numpy()
        )
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
    exclude: Collection[str] = (),
) -> pd.DataFrame:
    """Every other arm but those in ``exclude`` against ``baseline`` per metric, paired on
    conditions (each the mean of its seeds). A table that cannot show a difference says why in
    ``attrs["note"]``."""
    per_video = per_video[~per_video["arm"].isin(set(exclude) - {baseline})]
    arms = set(per_video["arm"])
    missing = (
        f"the baseline arm {baseline!r} is missing" if baseline not in arms
        else f"the run has no arm but the baseline {baseline!r}" if arms == {baseline}
        else None
    )
    if missing:
        empty = _typed(pd.DataFrame(columns=PAIRED_COLUMNS))
        empty.attrs["note"] = f"no paired comparison: {missing}"
        return empty
    base = per_video[per_video["arm"] == baseline]
    base_means = {metric: condition_means(group) for metric, group in base.groupby("metric")}
    rows = []
    others = per_video[per_video["arm"] != baseline]
    for (arm, metric), group in others.groupby(["arm", "metric"], sort=False):
        diffs = (condition_means(group) - base_means.get(metric, pd.Series(dtype=float))).dropna()
        diffs = diffs.to_numpy(float)
        low, high = bootstrap_mean_ci(diffs, group_rng(seed, arm, metric, baseline), n_boot, level)
        delta = diffs.mean() if len(diffs) else np.nan
        effect = rank_biserial(diffs)
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
                "effect_size": effect,
                "better": _better(effect, group["higher_is_better"].iloc[0]),
            }
        )
    table = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for _, index in table.groupby("metric", sort=False).groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p_value"])
    table["significant"] = table["p_holm"] < alpha
    table = _typed(table)
    pairs, compared = int(table["n_pairs"].max()), others["arm"].nunique()
    floor = smallest_holm_p(pairs, compared)
    if floor >= alpha:
        table.attrs["note"] = (
            f"no difference can be significant here: with {pairs} conditions paired and "
            f"{compared} arms compared, the smallest possible Holm-corrected p is {floor:.2g} "
            f"(>= {alpha}); add conditions (seeds of one condition are averaged, not counted)"
        )
    return table


def _better(effect: float, higher_is_better) -> bool | None:
    if pd.isna(higher_is_better) or not np.isfinite(effect) or effect == 0:
        return None
    return bool(effect > 0) == bool(higher_is_better)


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
