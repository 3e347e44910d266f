"""``reports.stats`` against independent references: a hand-worked Holm example and the
step-down rejection rule, exact sign-flip enumeration for the Wilcoxon p, a hand-computed
rank-biserial, bootstrap coverage on simulated data, planted shifts and null data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from reports.stats import PAIRED_COLUMNS, compare, holm, rank_biserial, summarize, wilcoxon_p


def tidy(values: dict[str, np.ndarray], metric="m", higher_is_better=True) -> pd.DataFrame:
    """A per-video table: one row per arm and video (sample i, seed 0)."""
    rows = [
        {
            "arm": arm,
            "sample": f"s{i}",
            "seed": 0,
            "metric": metric,
            "family": "quality",
            "value": float(v),
            "higher_is_better": higher_is_better,
            "status": "ok" if np.isfinite(v) else "error",
            "detail": "",
            "provenance": "{}",
        }
        for arm, column in values.items()
        for i, v in enumerate(column)
    ]
    frame = pd.DataFrame(rows)
    frame["higher_is_better"] = frame["higher_is_better"].astype("boolean")
    return frame


def test_holm_matches_hand_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def holm_rejections(p: np.ndarray, alpha: float) -> set[int]:
    """Holm's step-down rule as written in the paper: reject while p_(k) <= alpha / (m - k)."""
    order = np.argsort(p)
    rejected = set()
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        rejected.add(int(i))
    return rejected


def test_holm_adjusted_p_reproduces_step_down_rejections_and_skips_nan():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.uniform(0, 0.2, rng.integers(1, 8)) ** 2
        adjusted = holm(p)
        for alpha in (0.01, 0.05, 0.1):
            assert set(np.flatnonzero(adjusted <= alpha)) == holm_rejections(p, alpha)
    with_nan = holm([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], [0.02, 0.02])  # a family of 2, not 3


def exact_wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided p by enumerating all 2^n sign flips of the ranks (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(diffs))) + 1
    observed = ranks[diffs > 0].sum()
    centre = ranks.sum() / 2
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(diffs))
    ]
    return float(np.mean(np.abs(np.array(sums) - centre) >= abs(observed - centre) - 1e-9))


def test_wilcoxon_p_equals_exact_enumeration():
    rng = np.random.default_rng(2)
    for n in (5, 7, 9):
        diffs = rng.normal(0.3, 1, n)
        assert wilcoxon_p(diffs) == pytest.approx(exact_wilcoxon_p(diffs), rel=1e-9)
    assert np.isnan(wilcoxon_p(np.array([0.4])))
    assert wilcoxon_p(np.zeros(6)) == 1.0


def test_rank_biserial_hand_computed():
    # |d| ranks 1, 2, 3, 4; R+ = 1 + 2 + 4 = 7, R- = 3 -> (7 - 3) / 10
    assert rank_biserial(np.array([1.0, 2.0, -3.0, 4.0])) == pytest.approx(0.4)
    assert rank_biserial(np.array([0.5, 1.0, 2.0])) == 1.0
    assert rank_biserial(np.zeros(3)) == 0.0


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(3)
    n, reps, true_mean = 30, 300, 2.0
    data = {f"arm{r}": rng.exponential(true_mean, n) for r in range(reps)}  # skewed on purpose
    summary = summarize(tidy(data), n_boot=1000, seed=0)
    covered = (summary["ci_low"] <= true_mean) & (true_mean <= summary["ci_high"])
    assert 0.88 <= covered.mean() <= 0.985, covered.mean()
    # the interval has the width the central limit theorem predicts, not just any width
    width = (summary["ci_high"] - summary["ci_low"]).median()
    assert width == pytest.approx(2 * 1.96 * true_mean / np.sqrt(n), rel=0.15)


def test_summary_counts_missing_and_ignores_row_order():
    per_video = tidy({"a": np.array([1.0, 2.0, np.nan, 4.0]), "b": np.array([5.0, 5.0, 5, 5])})
    summary = summarize(per_video, n_boot=500).set_index("arm")
    assert summary.loc["a", "mean"] == pytest.approx(7 / 3)
    assert (summary.loc["a", "n"], summary.loc["a", "n_missing"]) == (3, 1)
    assert summary.loc["b", "ci_low"] == summary.loc["b", "ci_high"] == 5.0
    shuffled = summarize(per_video.sample(frac=1, random_state=0), n_boot=500).set_index("arm")
    pd.testing.assert_frame_equal(summary, shuffled.loc[summary.index])


def test_paired_comparison_detects_a_planted_shift_in_the_metric_direction():
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, 20)  # large between-video spread, small paired noise
    arms = {
        "exsvd": base,
        "worse": base - 0.3 + rng.normal(0, 0.1, 20),
        "null": base + rng.normal(0, 0.1, 20),
    }
    table = compare(tidy(arms, higher_is_better=True), n_boot=1000).set_index("arm")
    assert table.loc["worse", "significant"] and not table.loc["worse", "better"]
    assert table.loc["worse", "ci_high"] < 0 < table.loc["null", "ci_high"]
    assert table.loc["worse", "effect_size"] < -0.8
    assert not table.loc["null", "significant"]
    lower_better = compare(tidy(arms, higher_is_better=False), n_boot=200).set_index("arm")
    assert lower_better.loc["worse", "better"]


def test_null_rejection_rate_is_near_alpha():
    rng = np.random.default_rng(5)
    rejected = []
    for _ in range(200):
        base = rng.normal(0, 1, 12)
        per_video = tidy({"exsvd": base, "other": base + rng.normal(0, 1, 12)})
        rejected.append(bool(compare(per_video, n_boot=10)["significant"].iloc[0]))
    assert np.mean(rejected) <= 0.1


def test_pairs_only_on_shared_sample_and_seed_holm_within_metric():
    per_video = tidy({"exsvd": np.arange(6.0), "a": np.arange(6.0) + 1, "b": np.arange(6.0)})
    per_video = per_video.drop(per_video.index[(per_video["arm"] == "a")][:2])  # a lacks s0, s1
    per_video.loc[(per_video["arm"] == "exsvd") & (per_video["sample"] == "s5"), "value"] = np.nan
    table = compare(per_video, n_boot=200).set_index("arm")
    assert table.loc["a", "n_pairs"] == 3  # s2, s3, s4
    assert table.loc["a", "delta_mean"] == 1.0
    assert table.loc["b", "p_value"] == 1.0 and table.loc["b", "effect_size"] == 0.0
    assert pd.isna(table.loc["b", "better"])
    p = table.loc[["a", "b"], "p_value"].to_numpy()
    np.testing.assert_allclose(table.loc[["a", "b"], "p_holm"], holm(p))


def test_missing_baseline_gives_an_empty_table_with_a_note():
    table = compare(tidy({"a": np.ones(3)}), baseline="exsvd")
    assert table.empty and list(table.columns) == PAIRED_COLUMNS
    assert "exsvd" in table.attrs["note"]


def with_seeds(per_video: pd.DataFrame, seeds: int, jitter: float = 0.0) -> pd.DataFrame:
    """Each video repeated as ``seeds`` noise seeds of its condition (values jittered)."""
    rng = np.random.default_rng(9)
    copies = []
    for seed in range(seeds):
        copy = per_video.assign(seed=seed)
        copy["value"] = copy["value"] + jitter * rng.normal(size=len(copy))
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def test_seeds_of_one_condition_are_not_independent_pairs():
    rng = np.random.default_rng(6)
    base = rng.normal(0, 1, 5)
    per_video = tidy({"exsvd": base, "other": base + rng.normal(0.5, 0.3, 5)})
    one = compare(per_video, n_boot=200).iloc[0]
    three = compare(with_seeds(per_video, 3, jitter=1e-6), n_boot=200).iloc[0]
    assert one["n_pairs"] == three["n_pairs"] == 5  # conditions, not videos
    assert three["p_value"] == pytest.approx(one["p_value"])  # 0.0625: not 3 x the evidence
    # the summary interval resamples conditions: copies of a condition add no information
    summary_one = summarize(per_video, n_boot=500).set_index("arm")
    summary_three = summarize(with_seeds(per_video, 3), n_boot=500).set_index("arm")
    np.testing.assert_allclose(summary_three[["ci_low", "ci_high"]],
                               summary_one[["ci_low", "ci_high"]], rtol=1e-12)
    assert summary_three.loc["other", "n"] == 15


def test_the_mark_follows_the_test_not_a_mean_pulled_by_outliers():
    diffs = np.r_[np.full(26, -0.1), [5.0, 6.0, 7.0, 8.0]]  # most pairs lower, 4 far higher
    per_video = tidy({"exsvd": np.zeros(30), "arm": diffs})
    row = compare(per_video, n_boot=200).iloc[0]
    assert row["delta_mean"] > 0 and row["effect_size"] < 0 and row["significant"]
    assert row["better"] == False  # noqa: E712 (a nullable boolean): lower on most pairs


def test_a_table_that_cannot_show_a_difference_says_why():
    rng = np.random.default_rng(7)
    arms = {name: rng.normal(0, 1, 7) + shift for name, shift in
            (("exsvd", 0), ("a", 3), ("b", 3), ("c", 3), ("d", 3), ("e", 3))}
    table = compare(tidy(arms), n_boot=50)
    assert not table["significant"].any()  # every arm 3 sd higher on every pair, still none
    assert "with 7 conditions paired and 5 arms compared" in table.attrs["note"]
    eight = compare(tidy({k: np.r_[v, v[0]] for k, v in arms.items()}), n_boot=50)
    assert "note" not in eight.attrs and eight["significant"].all()
    only = compare(tidy({"exsvd": np.ones(8)}))
    assert only.empty and "no arm but the baseline" in only.attrs["note"]


def test_paired_values_are_each_conditions_mean_over_its_seeds():
    base = tidy({"exsvd": np.zeros(6), "arm": np.zeros(6)})
    per_video = with_seeds(base, 2)
    seed_values = {0: [1.0, 2, 3, 4, 5, 6], 1: [3.0, 0, 3, 8, 1, 10]}  # the arm's, per seed
    for seed, values in seed_values.items():
        rows = (per_video["arm"] == "arm") & (per_video["seed"] == seed)
        per_video.loc[rows, "value"] = values
    means = (np.array(seed_values[0]) + np.array(seed_values[1])) / 2  # 2, 1, 3, 6, 3, 8
    row = compare(per_video, n_boot=200).iloc[0]
    assert row["n_pairs"] == 6 and row["delta_mean"] == pytest.approx(means.mean())
    assert row["p_value"] == pytest.approx(wilcoxon_p(means))


def test_zero_differences_are_dropped_before_ranking():
    diffs = np.array([0.0, 0.0, 1.0, 2.0, -3.0, 4.0])
    nonzero = diffs[diffs != 0]  # the reference: enumerate sign flips of the non-zero ones
    observed = stats_ranks(nonzero)[nonzero > 0].sum()  # W+ of the non-zero differences
    flips = [
        sum(r for r, s in zip(stats_ranks(nonzero), signs, strict=True) if s > 0)
        for signs in itertools.product((1, -1), repeat=len(nonzero))
    ]
    centre = np.mean(flips)
    exact = np.mean([abs(f - centre) >= abs(observed - centre) - 1e-9 for f in flips])
    assert wilcoxon_p(diffs) == pytest.approx(exact)
    ranks = stats_ranks(nonzero)  # 1, 2, 3, 4 on |1|, |2|, |-3|, |4|
    assert rank_biserial(diffs) == pytest.approx((1 + 2 + 4 - 3) / 10)
    assert ranks.tolist() == [1, 2, 3, 4]


def stats_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of |values| (no ties here), 1-based."""
    return np.argsort(np.argsort(np.abs(values))) + 1.0


def test_holm_is_applied_within_each_metric_not_across_the_table():
    rng = np.random.default_rng(11)
    base = rng.normal(0, 1, 10)
    arms = {"exsvd": base, "a": base + 0.5 + rng.normal(0, 0.2, 10), "b": base + 0.01}
    table = pd.concat([tidy(arms, metric="m1"), tidy(arms, metric="m2")], ignore_index=True)
    result = compare(table, n_boot=50)
    for metric, part in result.groupby("metric"):
        np.testing.assert_allclose(part["p_holm"], holm(part["p_value"]), err_msg=metric)
    assert not np.allclose(result["p_holm"], holm(result["p_value"]))  # a table-wide family


def test_cluster_bootstrap_with_unequal_seed_counts_resamples_whole_conditions():
    """Against a loop that rebuilds each resample from the picked conditions' videos: a
    condition with 4 seeds weighs 4 videos in its resamples, one with 1 seed weighs 1."""
    from reports.stats import bootstrap_mean_ci

    videos = {"a": [1.0, 2, 3], "b": [10.0], "c": [4.0, 5], "d": [7.0, 7, 7, 7]}
    values = np.concatenate([videos[c] for c in videos])
    clusters = np.repeat(list(videos), [len(v) for v in videos.values()])
    low, high = bootstrap_mean_ci(values, np.random.default_rng(5), 400, 0.9, clusters)
    order = sorted(videos, key=lambda c: (np.mean(videos[c]), c))  # the documented ordering
    picks = np.random.default_rng(5).integers(0, len(order), (400, len(order)))
    means = [np.mean(np.concatenate([videos[order[i]] for i in row])) for row in picks]
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [5, 95])))
    assert low < values.mean() < high
    unweighted = [np.mean([np.mean(videos[order[i]]) for i in row]) for row in picks]
    assert (low, high) != pytest.approx(tuple(np.percentile(unweighted, [5, 95])))


def test_excluded_arms_get_no_row_and_stay_out_of_holms_family():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 8)
    arms = {"exsvd": base, "a": base + 1 + rng.normal(0, 0.1, 8), "short": base + 5}
    table = compare(tidy(arms), n_boot=50, exclude=["short"])
    assert list(table["arm"]) == ["a"]  # another length: not compared like for like
    assert table["p_holm"].iloc[0] == table["p_value"].iloc[0]  # a family of one
    both = compare(tidy(arms), n_boot=50).set_index("arm")
    assert both.loc["a", "p_holm"] == 2 * table["p_value"].iloc[0]
    assert compare(tidy(arms), n_boot=50, exclude=["exsvd"]).shape[0] == 2  # never the baseline
