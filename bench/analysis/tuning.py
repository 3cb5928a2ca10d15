"""Picks each optimizer's trial per problem from the swept grid, and scores it.

A trial is one hyperparameter setting of a pair (`bench.results.schema`): its id and every
swept hyperparameter, the learning rate and any other. Seeds are pooled within a trial
only; the tuned trial is re-run on the eval seeds with its whole setting.

Cost axes: `steps`, `grad_evals` (gradient evaluations: line searches, second
gradients and Hessians included) and `seconds`; each lane records its cost to reach
the target on each (`steps_to_target`, `grad_evals_to_target`, `seconds_to_target`: the
columns of role cost in `bench.results.schema.RUNS`).

Lanes: `role == "tune"` lanes sweep the grid; the tuned trial of each pair is re-run
on fresh seeds, its `role == "eval"` lanes, and every number reported for it comes from
those. A runs table without `role` (older folders) uses every lane for both.

Tuning rule, per (problem, optimizer), over the tune lanes: a setting reaches the
target when its median cost to target over seeds is finite (a lane that never reaches
it, or diverges, costs +inf). Settings that reach the target compete on median cost to
target on the chosen axis; only settings that do not reach it compete on median final
f - f*, clipped below at the target (values under the target, and negative f - f* from
rounding, count as the target) and +inf for a diverged lane. Equal costs go to the
lower such median, then to the smaller learning rate (then the smaller values of the
other hyperparameters, in column order). With cross-validation (`cv_loss`
present), the median held-out loss (mean over folds) takes the place of f - f*.

Reported at the tuned trial, over its eval seeds: median final f - f* and its
interquartile range, the median cost to target on every axis, success rate (seeds that
reach the target without diverging), the median of each problem metric (the numeric
runs.csv.gz columns `bench.results.schema.RUNS` does not declare, `schema.problem_metrics`); over
the tune grid: tuneability and the share of diverged lanes. Tuneability is the share
of the grid that the same rule judges close to the tuned setting: when it reaches the
target, grid points that reach it within MAX_RATIO times its median cost (the points
that would still score in the performance profile against it); when it does not, grid
points whose median final f - f* (clipped at the target) is within TUNEABLE_FACTOR of
its own. It is judged on the training f - f* also under cross-validation: a held-out
loss has no zero to take a factor from.

Ranking within a problem: higher success rate, then lower median cost to target on the
chosen axis, then lower median final f - f*.
"""

import numpy as np
import pandas as pd

from bench.results import schema
from problems import MODELS

PAIR = schema.PAIR
# Cost axis -> the runs.csv.gz column of each lane's cost to reach the target (the columns
# of role COST in `schema.RUNS`).
COSTS = {
    name.removesuffix("_to_target"): name
    for name, column in schema.DECLARED.items()
    if column.role == schema.COST
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


def cost_to_target(runs: pd.DataFrame, cost: str) -> np.ndarray:
    """Per lane: its cost to reach the target, +inf when it never does or diverges.

    NaN on every lane when `runs` does not record the axis.
    """
    if COSTS[cost] not in runs:
        return np.full(len(runs), np.nan)
    value = runs[COSTS[cost]].to_numpy(np.float64)
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


def ranked(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows the overall ranking, the profiles and their statistics are computed over:
    every problem but a model family on which the suite ran only some of the run's
    optimizers (`[models]` in bench/suite.toml), where a rule not run would count as
    failing a problem it was never given. Those problems keep their own tables."""
    everyone = summary["optimizer"].nunique()
    run_by = summary.groupby("problem")["optimizer"].nunique()
    declined = [p for p in run_by[run_by < everyone].index if p in MODELS]
    return summary[~summary["problem"].isin(declined)]


def cost_matrix(summary: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Median cost to target over the `ranked` problems, problems x optimizers; +inf where
    unsolved or not run."""
    times = ranked(summary).pivot(
        index="problem", columns="optimizer", values=f"median_{cost}_to_target"
    )
    return times.fillna(np.inf)


def performance_ratios(times: np.ndarray) -> np.ndarray:
    """Performance ratios r = t / min t over the last axis (optimizers); cost 0 ties at 1."""
    best = times.min(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(times == best, 1.0, times / best)


def problem_scores(times: np.ndarray) -> np.ndarray:
    """Each problem's part of the integrated profile score, per optimizer.

    times: [..., problems, optimizers] median costs to target, +inf where unsolved.
    The integral of [r <= tau] over tau in [1, MAX_RATIO], divided by MAX_RATIO - 1, is
    (MAX_RATIO - r) / (MAX_RATIO - 1) clipped to [0, 1]; the overall score is its mean
    over problems. NaN on a problem no optimizer solves (it carries no information).
    """
    scores = np.clip((MAX_RATIO - performance_ratios(times)) / (MAX_RATIO - 1.0), 0.0, 1.0)
    return np.where(np.isfinite(times.min(axis=-1, keepdims=True)), scores, np.nan)


def performance_profile(
    summary: pd.DataFrame, taus: np.ndarray, cost: str = DEFAULT_COST
) -> pd.DataFrame:
    """Dolan-More profile over median cost to target: rho_s(tau) per optimizer.

    r[p, s] = t[p, s] / min_s t[p, s]; rho_s(tau) = share of problems with r <= tau.
    Problems that no optimizer solves carry no information and are left out.
    Returns a frame indexed by tau, one column per optimizer.
    """
    times = cost_matrix(summary, cost)
    times = times[np.isfinite(times).any(axis=1)]
    ratios = performance_ratios(times.to_numpy())
    profile = (ratios[None] <= np.asarray(taus)[:, None, None]).mean(axis=1)
    return pd.DataFrame(profile, index=pd.Index(taus, name="tau"), columns=times.columns)


def mean_scores(times: np.ndarray) -> np.ndarray:
    """problem_scores averaged over the problems some optimizer solves (0 when none does).

    times: [..., problems, optimizers]; returns [..., optimizers].
    """
    scores = problem_scores(times)
    solvable = np.isfinite(scores[..., :1])
    total = np.where(solvable, scores, 0.0).sum(axis=-2)
    return total / np.maximum(solvable.sum(axis=-2), 1)


def integrated_scores(summary: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.Series:
    """AlgoPerf-style score: (1 / (r_max - 1)) * integral of rho_s(tau) for tau in [1, r_max]."""
    times = cost_matrix(summary, cost)
    return pd.Series(mean_scores(times.to_numpy()), index=times.columns, name="score")


def data_profile(summary: pd.DataFrame, dims: dict[str, int], budgets: np.ndarray) -> pd.DataFrame:
    """Moré-Wild data profile: share of problems solved within each budget, per optimizer.

    A budget counts in units of d + 1 gradient evaluations (d: the problem's parameter
    count, `dims`), what a finite-difference gradient costs in function evaluations, so
    that problems of different sizes share one axis. Over every problem of `summary` in
    `dims`, solved by someone or not. Returns a frame indexed by budget, one column per
    optimizer.
    """
    return solved_within(cost_matrix(summary, "grad_evals"), dims, budgets)


def solved_within(times: pd.DataFrame, dims: dict[str, int], budgets: np.ndarray) -> pd.DataFrame:
    """The data profile of `times` (problems x optimizers, gradient evaluations to target,
    +inf where unsolved): per budget in units of d + 1, the share of its problems in
    `dims` each optimizer solves within it."""
    times = times[times.index.isin(list(dims))]
    units = times.div([dims[problem] + 1 for problem in times.index], axis=0).to_numpy()
    solved = (units[None] <= np.asarray(budgets)[:, None, None]).mean(axis=1)
    return pd.DataFrame(solved, index=pd.Index(budgets, name="budget"), columns=times.columns)


def costs_at_taus(
    curves: pd.DataFrame, runs: pd.DataFrame, facts: pd.DataFrame, taus
) -> dict[float, pd.DataFrame]:
    """Per tau, problems x optimizers: the gradient evaluations at which the tuned
    trial's curve first passes Moré and Wild's test f(x0) - f(x) >= (1 - tau) (f(x0) - f_L),
    that is f - f_L <= tau (f(x0) - f_L); +inf where it never does, where most of its
    evaluation lanes diverged, or where the pair did not run.

    curves: the curves table (the tuned trials' median loss and gradient evaluations at
    the record points); runs: its runs table (the evaluation lanes' divergence); facts:
    problems.csv, whose f0 and f_star (f_L) give each problem's targets; only its
    problems that ran count.
    """
    facts = facts.dropna(subset=["f0", "f_star"]).set_index("problem")
    points = curves[curves["problem"].isin(facts.index)]
    f0 = points["problem"].map(facts["f0"])
    f_star = points["problem"].map(facts["f_star"])
    lanes = lanes_of(runs, "eval")
    lanes = lanes[lanes["problem"].isin(facts.index)]
    failed = lanes.groupby(PAIR)["diverged"].mean() > 0.5
    pairs = pd.MultiIndex.from_frame(lanes[PAIR].drop_duplicates())
    problems, optimizers = (
        sorted(facts.index.intersection(lanes["problem"])),
        sorted(lanes["optimizer"].unique()),
    )
    matrices = {}
    for tau in taus:
        reached = points[(points["loss"] - f_star <= tau * (f0 - f_star)).to_numpy()]
        first = reached.groupby(PAIR)["grad_evals"].min().reindex(pairs)
        first[failed.reindex(pairs).to_numpy()] = np.inf
        matrix = first.unstack().reindex(index=problems, columns=optimizers)
        matrices[tau] = matrix.fillna(np.inf)
    return matrices
