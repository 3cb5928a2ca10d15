"""The tuning rule: picks each optimizer's trial per problem from the swept grid, and
scores it. The rule, what is reported for a pair and the ranking within a problem are
defined in docs/method.md ("The tuning rule", "What is reported for a pair", "Ranking");
this module is their one implementation.

A trial is one hyperparameter setting of a pair (`bench.results.schema`): its id and every
swept hyperparameter. `role == "tune"` lanes sweep the grid; the tuned trial is re-run on
fresh seeds, its `role == "eval"` lanes, which every reported number comes from (a runs
table without `role`, from an older folder, uses every lane for both). Cost axes are the
runs columns of role cost in `bench.results.schema.RUNS`.
"""

import numpy as np
import pandas as pd

from bench.results import schema

PAIR = schema.PAIR
# Cost axis -> the runs.csv.gz column of each lane's cost to reach the target (the columns
# of role COST in `schema.RUNS`).
COSTS = {
    name.removesuffix("_to_target"): name
    for name, column in schema.DECLARED.items()
    if column.role == schema.COST
}
# Cost axis -> the runs.csv.gz column of each lane's cost to the first touch of the target
# (role FIRST_HIT; folders written before lasting success lack them).
FIRST_HITS = {
    name.removesuffix("_to_first_hit"): name
    for name, column in schema.DECLARED.items()
    if column.role == schema.FIRST_HIT
}
COST_LABELS = {"steps": "steps", "grad_evals": "gradient evaluations", "seconds": "seconds"}
# Optimizers differ in what a step costs (an L-BFGS step runs a line search, a Newton
# step forms a Hessian); gradient evaluations count that work and, unlike seconds, do
# not depend on the machine.
DEFAULT_COST = "grad_evals"
# Without a target reached, a grid point is "tuneable" within this factor of the tuned f - f*.
TUNEABLE_FACTOR = 10.0
# AlgoPerf integrates the performance profile up to this ratio of costs.
MAX_RATIO = 4.0


def recorded_cost(runs: pd.DataFrame, cost: str) -> str:
    """`cost` when `runs` records it, else "steps" (folders written before the other axes)."""
    return cost if COSTS[cost] in runs else "steps"


def lanes_of(runs: pd.DataFrame, role: str) -> pd.DataFrame:
    """The lanes of `role` ("tune" or "eval"); every lane where runs has no `role` column."""
    return runs[runs["role"] == role] if "role" in runs else runs


def cost_to_target(runs: pd.DataFrame, cost: str, first_hit: bool = False) -> np.ndarray:
    """Per lane: its cost on axis `cost` to reach the target and stay there (the success
    that ranks), or with `first_hit` to touch it once; +inf when it never does or diverges.

    NaN on every lane when `runs` does not record the column.
    """
    column = (FIRST_HITS if first_hit else COSTS)[cost]
    if column not in runs:
        return np.full(len(runs), np.nan)
    value = runs[column].to_numpy(np.float64)
    reached = (value >= 0) & ~runs["diverged"].to_numpy(bool)  # never: -1 or NaN
    return np.where(reached, value, np.inf)


def _scored(runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """runs with each lane's `cost` to target, clipped `gap` and tuning `score`."""
    bad = runs["diverged"].to_numpy(bool)
    final = runs["final_suboptimality"].to_numpy(np.float64)
    gap = np.maximum(final, runs["target"].to_numpy(np.float64))
    gap = np.where(bad | ~np.isfinite(final), np.inf, gap)
    score = gap
    if "cv_loss" in runs:  # on the problems that were cross-validated
        held_out = runs["cv_loss"].to_numpy(np.float64)
        held_out = np.where(bad | ~np.isfinite(held_out), np.inf, held_out)
        score = np.where(cross_validated(runs), held_out, gap)
    return runs.assign(cost=cost_to_target(runs, cost), gap=gap, score=score)


def cross_validated(runs: pd.DataFrame) -> np.ndarray:
    """Per lane: whether its problem was cross-validated (has a held-out loss). A `--cv`
    run of data-set and closed-form problems holds both kinds."""
    if "cv_loss" not in runs:
        return np.zeros(len(runs), bool)
    return runs.groupby("problem")["cv_loss"].transform(lambda c: c.notna().any()).to_numpy(bool)


def grid_medians(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """Per trial (problem, optimizer, trial id, its study where there are studies, and
    its hyperparameters), over its tune seeds: median cost, gap and score."""
    lanes = schema.with_trials(lanes_of(runs, "tune"))
    study = [schema.STUDY] if schema.STUDY in lanes else []
    key = [*PAIR, schema.TRIAL, *study, *schema.hyperparameters(lanes)]
    return (
        _scored(lanes, cost)
        .groupby(key, sort=True, dropna=False)[["cost", "gap", "score"]]
        .median()
        .reset_index()
    )


def tuned_trials(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """One row per (problem, optimizer): the tuned trial, its hyperparameters and its grid
    medians.

    Where the trials form studies (a `study` column, the algoperf protocol), each study's
    best trial by the tuning rule is its result, and the tuned trial is the median study's
    best: the median over the studies, a study whose best misses the target counting as
    worse than any that reaches it.
    """
    medians = grid_medians(runs, cost)
    order = ["cost", "score", *schema.hyperparameters(medians)]
    medians = medians.sort_values([*PAIR, *order], kind="stable")
    if schema.STUDY not in medians:
        return medians.groupby(PAIR, sort=True).head(1).reset_index(drop=True)
    bests = medians.groupby([*PAIR, schema.STUDY], sort=True).head(1)
    bests = bests.sort_values([*PAIR, *order], kind="stable")
    rank = bests.groupby(PAIR, sort=True).cumcount()
    studies = bests.groupby(PAIR, sort=True)[schema.STUDY].transform("size")
    return bests[(rank == (studies - 1) // 2).to_numpy()].reset_index(drop=True)


def setting_text(row, hyperparameters: list[str]) -> str:
    """A trial's hyperparameters as 'lr 0.1, b1 0.9', leaving out those its pair does not
    sweep (empty in a table of several pairs)."""
    names = {"learning_rate": "lr"}
    return ", ".join(
        f"{names.get(k, k)} {row[k]:g}" for k in hyperparameters if not pd.isna(row[k])
    )


def tuneability(grid: pd.DataFrame, tuned) -> float:
    """Share of a pair's grid medians close to its tuned row by the tuning rule (module doc)."""
    if np.isfinite(tuned.cost):
        close = grid["cost"] <= MAX_RATIO * tuned.cost
    else:
        close = grid["gap"] <= TUNEABLE_FACTOR * tuned.gap
    return float(close.mean())


class MissingEvalLanes(ValueError):
    """A tuned setting that was not re-run on eval seeds (tuned by another cost axis)."""


def evaluation_lanes(runs: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """The eval lanes of each pair's tuned trial (`tuned`: tuned_trials or a summary).

    Raises MissingEvalLanes naming the pairs whose tuned trial has no eval lanes (a
    folder whose eval lanes were run for the settings another cost axis tunes to).
    """
    picks = tuned[[*PAIR, schema.TRIAL]]
    lanes = schema.with_trials(runs)
    lanes = lanes_of(lanes, "eval").merge(picks, on=[*PAIR, schema.TRIAL])
    found = lanes[PAIR].drop_duplicates()
    missing = tuned.merge(found, on=PAIR, how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    if len(missing):
        hyperparameters = schema.hyperparameters(tuned)
        names = ", ".join(
            f"{r['optimizer']} on {r['problem']} ({setting_text(r, hyperparameters)})"
            for _, r in missing.iterrows()
        )
        raise MissingEvalLanes(f"no eval lanes for the tuned setting of {names}")
    return lanes


def _quantile(values: pd.Series, q: float) -> float:
    """Linear-interpolated quantile in which +inf (diverged, never reached) is a value.

    np.quantile computes inf - inf = nan between two infinite neighbours; here the
    quantile between two equal values is that value.
    """
    x = np.sort(values.to_numpy(float))
    position = q * (len(x) - 1)
    low, high = x[int(np.floor(position))], x[int(np.ceil(position))]
    return float(low if low == high else low + (high - low) * (position - np.floor(position)))


def final_gap(lanes: pd.DataFrame) -> pd.Series:
    """Final f - f* per lane as measured (not clipped), +inf for a diverged lane."""
    return lanes["final_suboptimality"].where(~lanes["diverged"].astype(bool), np.inf)


def summarize(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """One row per (problem, optimizer) at its tuned trial, ranked within each problem:
    the trial id and its hyperparameters (empty where a pair does not sweep one), then
    the numbers reported for it."""
    runs = schema.with_trials(runs)
    tuned = tuned_trials(runs, cost)
    hyperparameters = schema.hyperparameters(tuned)
    grids = dict(list(grid_medians(runs, cost).groupby(PAIR, sort=True)))
    tune_lanes = dict(list(lanes_of(runs, "tune").groupby(PAIR, sort=True)))
    evals = dict(list(evaluation_lanes(runs, tuned).groupby(PAIR, sort=True)))
    metrics = schema.problem_metrics(runs)
    rows = []
    for _, pick in tuned.iterrows():
        pair = pick["problem"], pick["optimizer"]
        lanes, gap = evals[pair], final_gap(evals[pair])
        row = {
            "problem": pick["problem"],
            "optimizer": pick["optimizer"],
            schema.TRIAL: int(pick[schema.TRIAL]),
            **{k: pick[k] for k in hyperparameters},
            "tuned_on": (
                "cv_loss" if cross_validated(tune_lanes[pair]).any() else "final_suboptimality"
            ),
            "cost": cost,
            "seeds": len(lanes),
            "median_final_suboptimality": _quantile(gap, 0.5),
            "q25_final_suboptimality": _quantile(gap, 0.25),
            "q75_final_suboptimality": _quantile(gap, 0.75),
            "median_best_suboptimality": float(lanes["best_suboptimality"].median()),
            **{
                f"median_{axis}_to_target": float(np.median(cost_to_target(lanes, axis)))
                for axis in COSTS
            },
            "success_rate": float(np.isfinite(cost_to_target(lanes, "steps")).mean()),
            "tuneability": tuneability(grids[pair], pick),
            "diverged_share": float(tune_lanes[pair]["diverged"].astype(bool).mean()),
            "steps": int(lanes["steps"].iloc[0]),
        }
        if "cv_loss" in runs:
            row["median_cv_loss"] = float(lanes["cv_loss"].median())
        row |= {f"median_{m}": float(lanes[m].median()) for m in metrics}
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary = summary.sort_values(
        ["problem", "success_rate", f"median_{cost}_to_target", "median_final_suboptimality"],
        ascending=[True, False, True, True],
        kind="stable",
    )
    summary.insert(2, "rank", summary.groupby("problem").cumcount() + 1)
    return summary.reset_index(drop=True)
