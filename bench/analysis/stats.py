"""Uncertainty of the reported numbers: bootstrap intervals, the paired test, rank intervals
and the groups of the ranking (docs/method.md, "Uncertainty: intervals and tests").

Bootstrap: percentile intervals at LEVEL from RESAMPLES resamples, drawn by a generator
seeded with SEED, so that a folder's tables are the same on every redraw. The bounds are
order statistics of the resampled values (no interpolation, so that +inf, "never
reached", stays a value). A pair's median is resampled over its eval seeds. An overall
score, a mean over (problem, level) instances (`bench.analysis.profiles`), is resampled
in two stages: problems with replacement, each with all its levels (one draw for all
optimizers, so that their scores stay paired), then the eval seeds within each pair,
one draw of seeds for all the levels of a pick; the score is recomputed from the
resampled medians on every resample, and so is every optimizer's rank: its rank
interval, and the groups the ranking forms from them.

Paired test: the two-sided Wilcoxon signed-rank test: zero differences are dropped, tied
|differences| get their average rank; the p-value is exact (the permutation distribution
of W+ given the ranks, ties included) up to EXACT_LIMIT non-zero differences, and from
the normal approximation with tie and continuity correction beyond. Holm's step-down
correction controls the family-wise error rate at ALPHA within a family of tests (the
head-to-head comparisons against one reference, `bench.analysis.claims`).
"""

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from bench.analysis import profiles, tuning

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
ALPHA = 0.05
EXACT_LIMIT = 50
# Per-pair medians that get an interval: the final f - f* and the cost on every axis.
INTERVALS = ["final_suboptimality", *(f"{axis}_to_target" for axis in tuning.COSTS)]


def percentile_interval(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The central LEVEL interval of bootstrap samples along `axis` (order statistics)."""
    tail = (1.0 - LEVEL) / 2.0
    low = np.quantile(samples, tail, axis=axis, method="lower")
    high = np.quantile(samples, 1.0 - tail, axis=axis, method="higher")
    return low, high


def resampled_medians(
    values: np.ndarray, rng: np.random.Generator, count: int = RESAMPLES
) -> np.ndarray:
    """Medians of `count` resamples of `values` with replacement."""
    values = np.asarray(values, np.float64)
    return np.median(values[rng.integers(0, len(values), (count, len(values)))], axis=1)


def median_interval(values: np.ndarray) -> tuple[float, float]:
    """Bootstrap percentile interval of the median of `values`."""
    low, high = percentile_interval(resampled_medians(values, np.random.default_rng(SEED)))
    return float(low), float(high)


def _eval_values(lanes: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per eval lane: the final f - f* and the cost to target on every axis."""
    costs = {f"{axis}_to_target": tuning.cost_to_target(lanes, axis) for axis in tuning.COSTS}
    return {"final_suboptimality": tuning.final_gap(lanes).to_numpy(np.float64), **costs}


def with_intervals(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`summary` with `ci_low_*`, `ci_high_*` columns around the medians named in INTERVALS."""
    lanes = dict(list(tuning.evaluation_lanes(runs, summary).groupby(tuning.PAIR)))
    bounds = {f"ci_{side}_{name}": [] for name in INTERVALS for side in ("low", "high")}
    for pair in summary[tuning.PAIR].itertuples(index=False, name=None):
        for name, values in _eval_values(lanes[pair]).items():
            low, high = median_interval(values)
            bounds[f"ci_low_{name}"].append(low)
            bounds[f"ci_high_{name}"].append(high)
    return summary.assign(**bounds)


def resampled_level_medians(
    values: np.ndarray, rng: np.random.Generator, count: int = RESAMPLES
) -> np.ndarray:
    """Medians of `count` resamples of the rows of `values` (lanes x levels) with
    replacement, one draw of lanes for every level: [count, levels]. NaN (a level not
    recorded for these lanes) reads as +inf, unsolved."""
    values = np.asarray(values, np.float64)
    picks = rng.integers(0, len(values), (count, len(values)))
    medians = np.median(values[picks], axis=1)
    return np.where(np.isnan(medians), np.inf, medians)


def score_samples(summary: pd.DataFrame, runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """RESAMPLES bootstrap replicates of every optimizer's overall score (one column each):
    problems resampled with all their instances, then each pick's eval seeds (module doc)."""
    times = profiles.cost_matrix(summary, cost)
    problems = list(dict.fromkeys(profiles.problems_of(times)))
    optimizers = list(times.columns)
    levels = {p: list(times.loc[p].index) for p in problems}
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(problems), (RESAMPLES, len(problems)))
    # Per problem, its picks' resampled medians [picks, levels, optimizers]: every pick of
    # a problem, in every resample, gets a resample of seeds of its own.
    blocks = {
        p: np.full((int((picks == i).sum()), len(levels[p]), len(optimizers)), np.inf)
        for i, p in enumerate(problems)
    }  # a pair not run: unsolved
    lanes = tuning.evaluation_lanes(runs, summary)
    for (problem, optimizer), pair in lanes.groupby(tuning.PAIR, sort=True):
        if problem not in blocks:  # not ranked (profiles.ranked)
            continue
        costs = np.stack([tuning.cost_to_level(pair, cost, lv) for lv in levels[problem]], 1)
        block = blocks[problem]
        block[:, :, optimizers.index(str(optimizer))] = resampled_level_medians(
            costs, rng, len(block)
        )
    # Each pick adds its solved instances' scores and their number; a resample's score is
    # the sum over its picks over the count.
    sums = np.zeros((RESAMPLES, len(problems), len(optimizers)))
    counts = np.zeros((RESAMPLES, len(problems), 1))
    for i, p in enumerate(problems):
        scores = profiles.problem_scores(blocks[p])  # NaN where no one solves
        slots = picks == i
        sums[slots] = np.where(np.isfinite(scores), scores, 0.0).sum(axis=1)
        counts[slots] = np.isfinite(scores[:, :, :1]).sum(axis=1)
    scores = sums.sum(axis=1) / np.maximum(counts.sum(axis=1), 1)
    return pd.DataFrame(scores, columns=times.columns)


def wilcoxon(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples: (W+, p-value).

    W+ is the sum of the ranks of |x - y| over the pairs where x > y (zeros dropped,
    average ranks for ties). Under H0 each rank's sign is a fair coin.
    """
    d = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 0.0, 1.0
    ranks = pd.Series(np.abs(d)).rank().to_numpy()
    w = float(ranks[d > 0].sum())
    if n <= EXACT_LIMIT:
        # Count the sign patterns by their sum of doubled ranks (integers even with ties).
        doubled = np.rint(2 * ranks).astype(int)
        counts = np.zeros(doubled.sum() + 1)
        counts[0] = 1.0
        for r in doubled:
            counts[r:] = counts[r:] + counts[:-r]
        k = round(2 * w)
        tail = min(counts[: k + 1].sum(), counts[k:].sum()) / 2.0**n
        return w, min(1.0, 2.0 * tail)
    _, ties = np.unique(np.abs(d), return_counts=True)
    mean = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float((ties**3 - ties).sum()) / 48.0
    z = max(abs(w - mean) - 0.5, 0.0) / math.sqrt(variance)
    return w, math.erfc(z / math.sqrt(2.0))


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where adjusted < ALPHA."""
    p = np.asarray(pvalues, np.float64)
    order = np.argsort(p, kind="stable")
    steps = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def rank_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """Every optimizer's rank in each bootstrap replicate of `score_samples`: 1 + the
    number of optimizers with a strictly higher score in that replicate."""
    return samples.rank(axis=1, method="min", ascending=False).astype(int)


def groups(rank_low: ArrayLike, rank_high: ArrayLike) -> np.ndarray:
    """The group of each optimizer, given in ranking order by its rank interval
    (docs/method.md, "Uncertainty: intervals and tests"): the best-ranked optimizer not
    yet in a group leads the next group, which takes every optimizer not yet in a group
    whose rank interval overlaps the leader's (its rank_low <= the leader's rank_high).
    Numbered from 1."""
    low, high = np.asarray(rank_low), np.asarray(rank_high)
    group = np.zeros(len(low), int)
    for leader in range(len(low)):
        if not group[leader]:
            group[(group == 0) & (low <= high[leader])] = group.max() + 1
    return group


def overall_ranking(
    summary: pd.DataFrame, runs: pd.DataFrame, cost: str, can_run: pd.DataFrame
) -> pd.DataFrame:
    """One row per optimizer, sorted by profile score, then mean rank: the score with its
    interval, the rank interval and group, the instances solved (at least half the eval
    seeds succeed) and the ranked instances of the problems it ran, the problems it ran,
    coverage and the score over the problems it can run, mean rank. `summary`: the ranked
    rows (`profiles.ranked`); `can_run`: the pairs it can run (`profiles.runnable`).
    """
    samples = score_samples(summary, runs, cost)
    low, high = percentile_interval(samples.to_numpy())
    rank_low, rank_high = percentile_interval(rank_samples(samples).to_numpy())
    solved = profiles.solved_matrix(summary)
    per_optimizer = summary.groupby("optimizer").agg(
        problems=("problem", "size"),
        mean_rank=("rank", "mean"),
    )
    per_optimizer["solved"] = solved.sum().astype(int)
    ran = set(summary[tuning.PAIR].itertuples(index=False, name=None))
    problems = profiles.problems_of(solved)
    per_optimizer["instances"] = [
        sum((problem, name) in ran for problem in problems) for name in per_optimizer.index
    ]
    intervals = pd.DataFrame(
        {"score_low": low, "score_high": high, "rank_low": rank_low, "rank_high": rank_high},
        samples.columns,
    )
    table = per_optimizer.join(
        [
            profiles.integrated_scores(summary, cost),
            intervals,
            profiles.runnable_scores(summary, cost, can_run),
            can_run.mean().rename("coverage"),
        ]
    )
    table = table.reset_index().sort_values(
        ["score", "mean_rank", "optimizer"], ascending=[False, True, True]
    )
    table.insert(0, "overall_rank", np.arange(1, len(table) + 1))
    table["group"] = groups(table["rank_low"], table["rank_high"])
    columns = ["overall_rank", "optimizer", "score", "score_low", "score_high", "rank_low"]
    columns += ["rank_high", "group", "solved", "instances", "problems", "coverage", "score_run"]
    return table[[*columns, "mean_rank"]].reset_index(drop=True)
