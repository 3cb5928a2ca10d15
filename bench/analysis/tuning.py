"""The tuning rule: picks each optimizer's trial per problem from the swept grid, and
scores it. The rule, what is reported for a pair and the ranking within a problem are
defined in docs/method.md ("The tuning rule", "What is reported for a pair", "Ranking");
this module is their one implementation.

A trial is one hyperparameter setting of a pair (`bench.results.schema`): its id and every
swept hyperparameter. `role == "tune"` lanes sweep the grid; the tuned trial is re-run on
fresh seeds, its `role == "eval"` lanes, which every reported number comes from (a runs
table without `role`, from an older folder, uses every lane for both). Cost axes are the
runs columns of role cost in `bench.results.schema.RUNS`.

Success is judged at the relative levels of `schema.LEVELS` (`cost_to_level`): a trial
reaches a level when its median lasting cost there over its tune seeds is finite, and the
rule prefers the trial that reaches the most levels, then the cheapest at the deepest
level reached (`reach`). Where the runs record no levels (an older folder) or a pair's
problem resolves none, a pair is tuned as before on its problem's own target (`TARGET`).
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
# The relative levels (name -> tau, coarsest first) and the name of a problem's own target
# where it stands in for them: the instances a pair is judged at (docs/method.md).
LEVELS = schema.LEVELS
TARGET = "target"
# A trial's tune medians at each level (`grid_medians`), a pair's eval medians on an axis.
LEVEL_MEDIAN = "cost_tau_{}"


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


def recorded_levels(runs: pd.DataFrame) -> list[str]:
    """The levels of `schema.LEVELS` whose step and gradient-evaluation costs `runs`
    records, coarsest first: none in a folder written before the levels."""
    return [
        name
        for name in LEVELS
        if all(schema.level_column(axis, name) in runs for axis in ("steps", "grad_evals"))
    ]


def cost_to_level(runs: pd.DataFrame, cost: str, level: str) -> np.ndarray:
    """Per lane: its cost on axis `cost` to lasting success at `level` (a name of
    `schema.LEVELS`, or TARGET: `cost_to_target`); +inf when it never gets there to stay
    or diverges, NaN where the run's dtype cannot resolve the level on the lane's problem
    or `runs` does not record it. Seconds are the steps times the pair's seconds per step.
    """
    if level == TARGET:
        return cost_to_target(runs, cost)
    column = schema.level_column("steps" if cost == "seconds" else cost, level)
    if column not in runs:
        return np.full(len(runs), np.nan)
    value = runs[column].to_numpy(np.float64)
    reached = (value >= 0) & ~runs["diverged"].to_numpy(bool)
    values = np.where(np.isnan(value), np.nan, np.where(reached, value, np.inf))
    if cost == "seconds":
        per_step = (
            runs["seconds_per_step"].to_numpy(np.float64)
            if "seconds_per_step" in runs
            else np.full(len(runs), np.nan)
        )
        with np.errstate(invalid="ignore"):
            values = np.where(np.isfinite(values), values * per_step, values)
    return values


def reach(medians: pd.DataFrame, column: str = LEVEL_MEDIAN, target: str = "cost") -> pd.DataFrame:
    """What the tuning rule reads of each row of `medians` (rows of median costs: a
    trial's over its tune seeds, a pair's over its eval seeds): `reached`, the number of
    levels whose median cost (`column`, formatted with the level's name) is finite;
    `deepest`, the name of the deepest of them ("" where none); and `deepest_cost`, the
    median cost there (+inf where none). A row whose levels are all NaN (not recorded, or
    none resolved on its problem) is judged at its problem's own target (`target`, the
    median cost to it) instead: `reached` 1 or 0, `deepest` TARGET or ""."""
    names = [name for name in LEVELS if column.format(name) in medians]
    costs = medians[[column.format(name) for name in names]].to_numpy(np.float64)
    costs = costs.reshape(len(medians), len(names))
    own = medians[target].to_numpy(np.float64)
    finite = np.isfinite(costs)
    resolved = ~np.isnan(costs).all(axis=1) if names else np.zeros(len(medians), bool)
    # the deepest level with a finite median (levels are nested: lasting at a tau is
    # lasting at every coarser one), -1 where none
    deepest_at = np.full(len(medians), -1)
    for i in range(len(names)):
        deepest_at = np.where(finite[:, i], i, deepest_at)
    padded = np.concatenate([costs, np.full((len(medians), 1), np.inf)], axis=1)
    at_level = padded[np.arange(len(medians)), deepest_at]  # -1: the +inf pad
    level_names = np.array([*names, ""], dtype=object)
    own_reached = np.isfinite(own)
    reached = np.where(resolved, finite.sum(axis=1), own_reached.astype(int))
    deepest = np.where(resolved, level_names[deepest_at], np.where(own_reached, TARGET, ""))
    deepest_cost = np.where(resolved, at_level, np.where(own_reached, own, np.inf))
    return medians.assign(reached=reached.astype(int), deepest=deepest, deepest_cost=deepest_cost)


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
    levels = {
        LEVEL_MEDIAN.format(name): cost_to_level(runs, cost, name) for name in recorded_levels(runs)
    }
    return runs.assign(cost=cost_to_target(runs, cost), gap=gap, score=score, **levels)


def cross_validated(runs: pd.DataFrame) -> np.ndarray:
    """Per lane: whether its problem was cross-validated (has a held-out loss). A `--cv`
    run of data-set and closed-form problems holds both kinds."""
    if "cv_loss" not in runs:
        return np.zeros(len(runs), bool)
    return runs.groupby("problem")["cv_loss"].transform(lambda c: c.notna().any()).to_numpy(bool)


def grid_medians(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """Per trial (problem, optimizer, trial id, its study where there are studies, and
    its hyperparameters), over its tune seeds: median cost to the own target, gap and
    score, the median cost at each level the runs record (`cost_tau_NAME`; NaN where the
    problem does not resolve it), and what the rule reads of them (`reach`)."""
    lanes = schema.with_trials(lanes_of(runs, "tune"))
    study = [schema.STUDY] if schema.STUDY in lanes else []
    key = [*PAIR, schema.TRIAL, *study, *schema.hyperparameters(lanes)]
    levels = [LEVEL_MEDIAN.format(name) for name in recorded_levels(lanes)]
    scored = _scored(lanes, cost).groupby(key, sort=True, dropna=False)
    # +inf (never, diverged) is a value; a level NaN on every lane of a problem stays NaN
    medians = scored[["cost", "gap", "score", *levels]].median().reset_index()
    return reach(medians)


# The order of the tuning rule over `grid_medians` rows (after the hyperparameters'):
# most levels reached, then the cheapest at the deepest of them, then the score.
RULE = ["reached", "deepest_cost", "score"]
RULE_ASCENDING = [False, True, True]


def tuned_trials(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """One row per (problem, optimizer): the tuned trial, its hyperparameters and its grid
    medians.

    The rule (docs/method.md, "The tuning rule"): the most levels reached, then the lowest
    median cost at the deepest of them, then the lowest score (final f - f* floored at
    the target, or the held-out loss), then the smallest hyperparameters in column order
    (`RULE`). Where the trials form studies (a `study` column, the algoperf protocol),
    each study's best trial by the rule is its result, and the tuned trial is the median
    study's best by the same rule.
    """
    medians = grid_medians(runs, cost)
    hyperparameters = schema.hyperparameters(medians)
    order = [*PAIR, *RULE, *hyperparameters]
    ascending = [True, True, *RULE_ASCENDING, *(True for _ in hyperparameters)]
    medians = medians.sort_values(order, ascending=ascending, kind="stable")
    if schema.STUDY not in medians:
        return medians.groupby(PAIR, sort=True).head(1).reset_index(drop=True)
    bests = medians.groupby([*PAIR, schema.STUDY], sort=True).head(1)
    bests = bests.sort_values(order, ascending=ascending, kind="stable")
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
    """Share of a pair's grid medians close to its tuned row by the tuning rule
    (docs/method.md, "What is reported for a pair"): where the tuned trial reaches a
    level (or its own target), the trials that reach as many within MAX_RATIO times its
    cost at the deepest; else those within TUNEABLE_FACTOR of its final f - f*. 0 where
    even the tuned trial diverged (or ends at a non-finite f - f*): nothing is close to
    a setting that fails."""
    if tuned.reached > 0:
        close = (grid["reached"] == tuned.reached) & (
            grid["deepest_cost"] <= MAX_RATIO * tuned.deepest_cost
        )
    elif not np.isfinite(tuned.gap):
        return 0.0
    else:
        close = grid["gap"] <= TUNEABLE_FACTOR * tuned.gap
    return float(close.mean())


def grid_edge(grid: pd.DataFrame, tuned) -> str:
    """Where the tuned trial's learning rate sits among the pair's tune trials that share
    its other hyperparameters: "low" (the smallest), "high" (the largest), else "" (also
    where it is the only one, as in a random search, whose points share nothing)."""
    others = [c for c in schema.hyperparameters(grid) if c != "learning_rate"]
    same = np.ones(len(grid), bool)
    for name in others:
        values, mine = grid[name].to_numpy(), tuned[name]
        same &= pd.isna(values) if pd.isna(mine) else (values == mine)
    rates = grid.loc[same, "learning_rate"].to_numpy(np.float64)
    if len(np.unique(rates)) < 2:
        return ""
    if tuned.learning_rate <= rates.min():
        return "low"
    return "high" if tuned.learning_rate >= rates.max() else ""


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


def summary_level_column(axis: str, level: str) -> str:
    """The summary.csv column of a pair's median cost on `axis` at `level` (a name of
    `schema.LEVELS`, or TARGET: `median_AXIS_to_target`)."""
    if level == TARGET:
        return f"median_{axis}_to_target"
    return f"median_{schema.level_column(axis, level)}"


def success_column(level: str) -> str:
    """The summary.csv column of a pair's success rate at `level` (or TARGET)."""
    return "success_rate" if level == TARGET else f"success_rate_tau_{level}"


def _level_numbers(lanes: pd.DataFrame, levels: list[str]) -> dict[str, float]:
    """A pair's eval lanes at each level: the median cost on every axis, and the success
    rate (the share of lanes with a finite cost); NaN where the level is not resolved."""
    numbers = {}
    for level in levels:
        for axis in COSTS:
            values = cost_to_level(lanes, axis, level)
            numbers[summary_level_column(axis, level)] = float(np.median(values))
        values = cost_to_level(lanes, "steps", level)
        resolved = not np.isnan(values).all()
        numbers[success_column(level)] = (
            float(np.isfinite(values).mean()) if resolved else float("nan")
        )
    return numbers


def within_problem_order(summary: pd.DataFrame, cost: str) -> pd.DataFrame:
    """`summary` sorted as each problem ranks its pairs (docs/method.md, "Ranking"): on a
    problem with levels by the tuning rule over the eval medians (most levels reached,
    then the lowest median cost at the deepest, then the lowest median final f - f*); on
    one without, by success rate at the target, then median cost to it, then final f - f*."""
    ruled = reach(
        summary.assign(_own=summary[summary_level_column(cost, TARGET)]),
        summary_level_column(cost, "{}"),
        "_own",
    )
    leveled = _has_levels(summary, cost)
    first = np.where(leveled, ruled["reached"], summary["success_rate"])
    second = np.where(leveled, ruled["deepest_cost"], summary[summary_level_column(cost, TARGET)])
    keyed = summary.assign(_first=first, _second=second)
    keyed = keyed.sort_values(
        ["problem", "_first", "_second", "median_final_suboptimality"],
        ascending=[True, False, True, True],
        kind="stable",
    )
    return keyed.drop(columns=["_first", "_second"])


def _has_levels(summary: pd.DataFrame, cost: str) -> np.ndarray:
    """Per row: whether its problem is judged at levels, every pair of it having a median
    cost at some level (as `profiles.resolved_levels` counts them)."""
    columns = [summary_level_column(cost, name) for name in LEVELS]
    columns = [c for c in columns if c in summary]
    if not columns:
        return np.zeros(len(summary), bool)
    resolved = summary[columns].notna().any(axis=1)
    return resolved.groupby(summary["problem"]).transform("all").to_numpy(bool)


def summarize(runs: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """One row per (problem, optimizer) at its tuned trial, ranked within each problem:
    the trial id and its hyperparameters (empty where a pair does not sweep one), then
    the numbers reported for it (docs/method.md, "What is reported for a pair"; the
    columns in docs/results.md)."""
    runs = schema.with_trials(runs)
    tuned = tuned_trials(runs, cost)
    hyperparameters = schema.hyperparameters(tuned)
    levels = recorded_levels(runs)
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
            **_level_numbers(lanes, levels),
            "tuneability": tuneability(grids[pair], pick),
            "diverged_share": float(tune_lanes[pair]["diverged"].astype(bool).mean()),
            "grid_edge": grid_edge(grids[pair], pick),
            "steps": int(lanes["steps"].iloc[0]),
        }
        if "cv_loss" in runs:  # held out in the tuning sweep only: the tuned trial's there
            tuned_lanes = tune_lanes[pair][tune_lanes[pair][schema.TRIAL] == pick[schema.TRIAL]]
            row["median_cv_loss"] = float(tuned_lanes["cv_loss"].median())
        row |= {f"median_{m}": float(lanes[m].median()) for m in metrics}
        rows.append(row)
    summary = within_problem_order(pd.DataFrame(rows), cost)
    summary.insert(2, "rank", summary.groupby("problem").cumcount() + 1)
    return summary.reset_index(drop=True)
