"""Bootstrap intervals, the Wilcoxon signed-rank test, Holm's correction, rank intervals,
groups and coverage of the overall ranking."""

import math

import numpy as np
import pandas as pd
import pytest
from test_bench_tuning import lanes

from bench.analysis import profiles, stats, tuning


def test_wilcoxon_exact_against_a_hand_count():
    # |d| = 2, 1, 3, 4, 5, 6 -> ranks 2, 1, 3, 4, 5, 6; W+ = 2 + 3 + 4 + 6 = 15 of 21.
    # Subsets of {1..6} with sum <= 6 (= 21 - 15): 1+1+1+2+2+3+4 = 14 of 64 sign patterns.
    w, p = stats.wilcoxon([2, -1, 3, 4, -5, 6], np.zeros(6))
    assert w == 15
    assert p == pytest.approx(2 * 14 / 64, rel=1e-12)


def test_wilcoxon_drops_zeros_and_averages_tied_ranks():
    # d = 1, 1, -1, 2 (the 0 dropped): ranks 2, 2, 2, 4, W+ = 8. Doubled ranks 4, 4, 4, 8
    # give sums 0 (1 way), 4 (3), 8 (4), 12 (4), 16 (3), 20 (1); P(2 W+ >= 16) = 4/16.
    w, p = stats.wilcoxon([1, 1, -1, 2, 0], [0, 0, 0, 0, 0])
    assert w == 8 and p == pytest.approx(0.5, rel=1e-12)
    assert stats.wilcoxon([1, 2], [1, 2]) == (0.0, 1.0)


def test_wilcoxon_normal_approximation_by_hand():
    # d = -1..-20, 21..60: n = 60 > EXACT_LIMIT, W+ = 1830 - 210 = 1620, mean 60 * 61 / 4
    # = 915, variance 60 * 61 * 121 / 24 = 18452.5; z = (705 - 0.5) / sqrt(18452.5).
    d = np.concatenate([-np.arange(1, 21), np.arange(21, 61)])
    w, p = stats.wilcoxon(d, np.zeros(60))
    assert w == 1620
    assert p == pytest.approx(math.erfc(704.5 / math.sqrt(18452.5) / math.sqrt(2)), rel=1e-12)
    # Ties lower the variance by sum(t^3 - t) / 48: 60 values in 30 pairs of 2.
    tied = np.repeat(np.arange(1, 31), 2) * np.where(np.arange(60) < 20, -1, 1)
    w, p = stats.wilcoxon(tied, np.zeros(60))
    z = (abs(w - 915) - 0.5) / math.sqrt(18452.5 - 30 * 6 / 48)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_wilcoxon_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in (5, 12, 30, 80):
        x, y = rng.normal(size=n), rng.normal(0.3, 1.0, size=n)
        method = "exact" if n <= stats.EXACT_LIMIT else "approx"
        expected = scipy_stats.wilcoxon(x, y, method=method, correction=True).pvalue
        assert stats.wilcoxon(x, y)[1] == pytest.approx(expected, rel=1e-9)


def test_holm_by_hand():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running
    # maximum 0.02, 0.03, 0.06, 0.06.
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])


def test_the_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    hits = [
        low <= 0.5 <= high
        for low, high in (stats.median_interval(rng.uniform(size=40)) for _ in range(300))
    ]
    assert 0.90 <= np.mean(hits) <= 0.99


def test_the_median_interval_holds_the_median_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(3)
    few, many = rng.normal(size=10), rng.normal(size=1000)
    for values in (few, many):
        low, high = stats.median_interval(values)
        assert low <= np.median(values) <= high
    assert (
        np.subtract(*stats.median_interval(many)[::-1])
        < np.subtract(*stats.median_interval(few)[::-1]) / 4
    )
    # "Never reached" stays a value: the interval of a median that may be +inf.
    assert stats.median_interval([10, 12, np.inf, np.inf, np.inf]) == (10, np.inf)


# Steps to target per problem (8 problems): a always 10, c close to it, b 4x slower.
COSTS = {"a": [10] * 8, "c": [10, 11, 10, 9, 10, 12, 10, 9], "b": [40] * 8}


def _runs(costs: dict, copies: int = 1) -> pd.DataFrame:
    """Tune and 10 eval lanes per pair, each eval seed at the pair's cost plus 0..2."""
    frames = []
    for optimizer, per_problem in costs.items():
        for i, steps in enumerate(per_problem * copies):
            problem = f"p{i}"
            frames.append(lanes(problem, optimizer, 0.1, [0.0], [steps], role="tune"))
            eval_steps = steps + np.arange(10) % 3 - 1
            frames.append(lanes(problem, optimizer, 0.1, [0.0] * 10, eval_steps, role="eval"))
    return pd.concat(frames, ignore_index=True)


def _ranking(runs, skipped=None):
    summary = tuning.summarize(runs, "steps")
    can_run = profiles.runnable(summary, skipped)
    return stats.overall_ranking(summary, runs, "steps", can_run).set_index("optimizer")


def test_rank_intervals_and_groups_separate_only_what_the_resamples_separate():
    ranking = _ranking(_runs(COSTS))
    assert ranking.loc[["a", "c", "b"], "overall_rank"].tolist() == [1, 2, 3]
    # b is 4x slower than a on every problem: last on every resample. a and c swap places
    # on resamples of the problems where c is faster or slower than a.
    assert ranking.loc["b", ["rank_low", "rank_high"]].tolist() == [3, 3]
    assert ranking.loc["a", ["rank_low", "rank_high"]].tolist() == [1, 2]
    assert ranking.loc["c", ["rank_low", "rank_high"]].tolist() == [1, 2]
    assert ranking.loc[["a", "c", "b"], "group"].tolist() == [1, 1, 2]
    assert (ranking["score_low"] <= ranking["score"]).all()
    assert (ranking["score"] <= ranking["score_high"]).all()


def test_a_rank_is_one_plus_the_optimizers_strictly_better_on_that_resample():
    samples = pd.DataFrame({"x": [0.5, 0.2], "y": [0.5, 0.9], "z": [0.1, 0.2]})
    ranks = stats.rank_samples(samples)
    assert ranks.to_numpy().tolist() == [[1, 1, 3], [2, 1, 2]]


def test_a_group_takes_every_optimizer_whose_rank_interval_overlaps_its_leader():
    # Leader 0 (ranks 1-2) takes 1 (1-3) and 4 (2-6), not 2 (3-5): 2 leads the next
    # group and takes 3 (4-5). A wide interval joins a group above its neighbours'.
    low, high = [1, 1, 3, 4, 2, 6], [2, 3, 5, 5, 6, 6]
    assert stats.groups(low, high).tolist() == [1, 1, 2, 2, 1, 3]
    assert stats.groups([1, 2, 3], [1, 2, 3]).tolist() == [1, 2, 3]


def test_coverage_and_the_score_where_it_runs_leave_out_what_a_rule_cannot_run():
    # d: as fast as a (10 steps) on p0..p3 and skipped, as a rule that cannot run them,
    # on p4..p7. Each problem's part of the score is taken against every rule.
    costs = {**COSTS, "d": [10] * 4}
    runs = _runs(costs)
    skipped = pd.DataFrame(
        {"problem": [f"p{i}" for i in range(4, 8)], "optimizer": "d", "reason": "cannot"}
    )
    ranking = _ranking(runs, skipped)
    assert ranking.loc["d", "coverage"] == 0.5
    assert ranking.loc["d", "problems"] == 4
    # Ratio 1 on p0..p2; on p3 c's 9 steps make d's 10 a ratio of 10/9: (4 - 10/9) / 3.
    assert ranking.loc["d", "score_run"] == pytest.approx((3 + 26 / 27) / 4, rel=1e-12)
    assert ranking.loc["d", "score"] == pytest.approx((3 + 26 / 27) / 8, rel=1e-12)
    assert (ranking.loc[["a", "b", "c"], "coverage"] == 1).all()
    assert (
        ranking.loc[["a", "b", "c"], "score_run"] == ranking.loc[["a", "b", "c"], "score"]
    ).all()


def test_score_intervals_are_reproducible_and_shrink_with_more_problems():
    def width(copies):
        runs = _runs(COSTS, copies)
        ranking = _ranking(runs)
        return ranking.loc["c", "score_high"] - ranking.loc["c", "score_low"]

    assert width(1) == width(1) > 0
    assert width(4) < width(1)


def test_every_per_pair_median_gets_an_interval_from_the_eval_lanes():
    runs = _runs(COSTS)
    summary = stats.with_intervals(tuning.summarize(runs, "steps"), runs)
    for name in stats.INTERVALS:
        median = summary[f"median_{name}"]
        assert (summary[f"ci_low_{name}"] <= median).all()
        assert (median <= summary[f"ci_high_{name}"]).all()
    row = summary[(summary.problem == "p0") & (summary.optimizer == "a")].iloc[0]
    # Eval steps 9, 10, 11 (4, 3, 3 seeds): the median's interval lies within them.
    assert 9 <= row.ci_low_steps_to_target <= 10 <= row.ci_high_steps_to_target <= 11
