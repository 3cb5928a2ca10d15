"""Tuning-budget curves and sensitivity maps, from the tune lanes of a results folder.

A tuning budget of k trials (Sivaprasad et al. 2020, "Optimizer benchmarking needs to
account for hyperparameter tuning") is k settings drawn at random from the N a pair's
search ran, the best of them kept. Each trial is scored as the ranking scores a pair,
over the problem's instances (`profiles.instances`: the levels it resolves, else its
own target): at each, its median cost over the tuning seeds, as a performance ratio r
to the cheapest trial of any optimizer there, gives (MAX_RATIO - r) / (MAX_RATIO - 1)
clipped to [0, 1] (0: not reached); the trial's score is the mean over the instances
some trial reaches. The curve is the exact expectation, over every k-subset of the N
trials, of the best score among them: what resampling the trials converges to.
"""

from math import comb

import numpy as np
import pandas as pd

from bench.analysis import profiles, tuning
from bench.results import schema

PAIR = schema.PAIR


def trial_scores(runs: pd.DataFrame, cost: str = tuning.DEFAULT_COST) -> pd.DataFrame:
    """tuning.grid_medians with each trial's `trial_score` (see the module doc); NaN on a
    problem where no trial of any optimizer reaches any instance."""
    medians = tuning.grid_medians(runs, cost)
    levels = [tuning.LEVEL_MEDIAN.format(name) for name in tuning.LEVELS]
    levels = [column for column in levels if column in medians]
    scores = np.empty(len(medians))
    for _, rows in medians.groupby("problem", sort=False).indices.items():
        resolved = [c for c in levels if medians[c].iloc[rows].notna().any()]
        columns = resolved or ["cost"]  # no level resolved: the own target
        costs = medians[columns].to_numpy(np.float64)[rows].T  # instances x trials
        costs = np.where(np.isnan(costs), np.inf, costs)
        per_instance = profiles.problem_scores(costs)  # NaN where no trial reaches it
        reached = np.isfinite(per_instance)
        total = np.where(reached, per_instance, 0.0).sum(axis=0)
        count = reached.sum(axis=0)
        scores[rows] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return medians.assign(trial_score=scores)


def expected_best(scores: np.ndarray, k: int) -> float:
    """The expected largest of `k` values drawn without replacement from `scores`.

    Sorted from the largest, the i-th value (from 0) is the best of a k-subset exactly
    when the subset holds it and k - 1 of the n - 1 - i values after it:
    C(n - 1 - i, k - 1) of the C(n, k) subsets.
    """
    ordered = np.sort(np.asarray(scores, np.float64))[::-1]
    n = len(ordered)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the {n} trials, got {k}")
    weights = np.array([comb(n - 1 - i, k - 1) for i in range(n)], np.float64) / comb(n, k)
    return float(weights @ ordered)


def budget_curves(runs: pd.DataFrame, cost: str = tuning.DEFAULT_COST) -> pd.DataFrame:
    """Per pair and budget k = 1 .. N (its trial count): `expected_best_score` after k
    trials. Problems where no trial reaches anything are left out (no score to take)."""
    scored = trial_scores(runs, cost)
    rows = []
    for (problem, optimizer), trials in scored.groupby(PAIR, sort=True):
        scores = trials["trial_score"].to_numpy()
        if np.isnan(scores).any():
            continue
        for k in range(1, len(scores) + 1):
            rows.append(
                {
                    "problem": problem,
                    "optimizer": optimizer,
                    "trials": k,
                    # Four decimals: the scores are in [0, 1], and the file stays small.
                    "expected_best_score": round(expected_best(scores, k), 4),
                }
            )
    return pd.DataFrame(rows, columns=[*PAIR, "trials", "expected_best_score"])


def suite_budget_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and budget k: the mean expected best score over the problems it ran
    with at least k trials (the suite's overall score at that tuning budget)."""
    return (
        curves.groupby(["optimizer", "trials"], sort=True)["expected_best_score"]
        .mean()
        .reset_index()
    )


def sensitivities(scored: pd.DataFrame, bins: int = 4) -> pd.Series:
    """How much each swept hyperparameter of one pair moves its trial scores: the range of
    the median score over `bins` quantile bins of the hyperparameter, largest first.
    `scored`: trial_scores of one pair. Hyperparameters with one value are left out."""
    out = {}
    for name in schema.hyperparameters(scored):
        values = scored[name]
        if values.nunique() < 2:
            continue
        binned = pd.qcut(values.rank(method="first"), bins, labels=False, duplicates="drop")
        medians = scored["trial_score"].groupby(binned.to_numpy()).median()
        out[name] = float(medians.max() - medians.min())
    return pd.Series(out, dtype=np.float64).sort_values(ascending=False, kind="stable")


def axis_values(values: np.ndarray, scale: str) -> np.ndarray:
    """Hyperparameter values on the axis their search space spreads them along: log10 x
    ("log"), log10(1 - x) ("one_minus_log", decay rates near 1), else x."""
    values = np.asarray(values, np.float64)
    if scale == "log":
        return np.log10(values)
    if scale == "one_minus_log":
        return np.log10(1 - values)
    return values


def heat_map(scored: pd.DataFrame, second: str, scale: str, bins: int = 5) -> pd.DataFrame:
    """Median trial score over a `bins` x `bins` grid of log10 learning rate x `second` on
    its `scale` (`axis_values`), for one pair's trial_scores; NaN in cells no trial falls
    in. Indexed by the second hyperparameter's bin centres, one column per learning-rate
    bin centre (both in axis units)."""
    lr = np.log10(scored["learning_rate"].to_numpy(np.float64))
    other = axis_values(scored[second].to_numpy(), scale)
    edges = [np.linspace(x.min(), x.max(), bins + 1) for x in (other, lr)]
    row, column = (
        np.clip(np.digitize(x, e[1:-1]), 0, bins - 1)
        for x, e in zip((other, lr), edges, strict=True)
    )
    cells = (
        scored.assign(row=row, column=column)
        .groupby(["row", "column"])["trial_score"]
        .median()
        .unstack()
        .reindex(index=range(bins), columns=range(bins))
    )
    centres = [(e[:-1] + e[1:]) / 2 for e in edges]
    return pd.DataFrame(cells.to_numpy(), index=centres[0], columns=centres[1])
