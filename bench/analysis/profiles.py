"""Performance and data profiles over tuned pairs: what the overall ranking and its figures
are computed from (docs/method.md, "Ranking").

Every function takes the `ranked` rows of a summary (`bench.analysis.tuning.summarize`):
one row per tuned (problem, optimizer), with its median costs on each axis. The unit they
score is an **instance**, a (problem, level) pair as a runtime ECDF aggregates over
(function, target) pairs (COCO): each problem counts once per relative level it resolves
(`instances`), or once at its own target where it resolves none (a folder written before
the levels). A cost matrix is instances x optimizers, indexed by (problem, level).
"""

from collections.abc import Collection

import numpy as np
import pandas as pd

from bench.analysis.tuning import (
    DEFAULT_COST,
    LEVELS,
    MAX_RATIO,
    PAIR,
    TARGET,
    success_column,
    summary_level_column,
)

# Moré and Wild's convergence test f(x0) - f(x) >= (1 - tau) (f(x0) - f_L): the taus the
# data profiles are drawn at, one panel per level of `LEVELS` among them, where a folder's
# spec names none.
TAUS = (1e-1, 1e-3, 1e-5, 1e-7)
# The instance labels in the order a problem's instances are listed.
INSTANCE_ORDER = [*LEVELS, TARGET]


def ranked(summary: pd.DataFrame, models: Collection[str]) -> pd.DataFrame:
    """The rows the overall ranking, the profiles and their statistics are computed over:
    every problem but a model family (`models`, problems.csv's `model_family`) on which
    the run has only some of its optimizers (bench/models.toml's, joined to the others),
    where a rule not run would count as failing a problem it was never given. Those
    problems keep their own tables."""
    everyone = summary["optimizer"].nunique()
    run_by = summary.groupby("problem")["optimizer"].nunique()
    declined = [p for p in run_by[run_by < everyone].index if p in set(models)]
    return summary[~summary["problem"].isin(declined)]


def resolved_levels(summary: pd.DataFrame) -> dict[str, list[str]]:
    """Each problem of `summary` -> the levels it resolves, coarsest first: those at which
    every pair of the problem has a median cost (a level the run's dtype cannot resolve is
    NaN on every lane; a pair joined from a folder written before the levels has none, and
    then its problem is judged at its own target); none where the summary records no
    levels."""
    problems = sorted(summary["problem"].unique())
    found = {problem: [] for problem in problems}
    for level in LEVELS:
        column = summary_level_column("steps", level)
        if column not in summary:
            continue
        resolved = summary[column].notna().groupby(summary["problem"]).all()
        for problem in resolved.index[resolved.to_numpy(bool)]:
            found[problem].append(level)
    return found


def records_levels(summary: pd.DataFrame) -> bool:
    """Whether some problem of `summary` resolves a relative level."""
    return any(resolved_levels(summary).values())


def instances(summary: pd.DataFrame, level: str | None = None) -> pd.MultiIndex:
    """The (problem, level) instances of `summary`'s problems, sorted by problem. `level`
    None: the headline's, every level a problem resolves, or its own target (TARGET)
    where it resolves none; a level's name: the problems that resolve it; TARGET: every
    problem's own target."""
    rows = []
    for problem, levels in resolved_levels(summary).items():
        if level is None:
            rows += [(problem, name) for name in levels or [TARGET]]
        elif level == TARGET or level in levels:
            rows.append((problem, level))
    return pd.MultiIndex.from_tuples(rows, names=["problem", "level"])


def instance_matrix(summary: pd.DataFrame, column_of, level: str | None = None) -> pd.DataFrame:
    """Instances (`instances(summary, level)`) x optimizers of `summary`: at (problem, L)
    the value of column `column_of(L)` of the pair's row; NaN where the pair did not run
    or the summary lacks the column."""
    index = instances(summary, level)
    optimizers = sorted(summary["optimizer"].unique())
    matrix = pd.DataFrame(np.nan, index=index, columns=optimizers)
    for label in index.get_level_values("level").unique():
        column = column_of(label)
        if column not in summary:
            continue
        values = summary.pivot(index="problem", columns="optimizer", values=column)
        rows = index[index.get_level_values("level") == label]
        picked = values.reindex(index=rows.get_level_values("problem"), columns=optimizers)
        matrix.loc[rows] = picked.to_numpy(np.float64)
    return matrix


def cost_matrix(summary: pd.DataFrame, cost: str, level: str | None = None) -> pd.DataFrame:
    """Median cost on axis `cost`, instances (`instances(summary, level)`) x optimizers;
    +inf where unsolved or not run. `summary`: the `ranked` rows, as every profile below
    takes them."""
    matrix = instance_matrix(summary, lambda label: summary_level_column(cost, label), level)
    return matrix.fillna(np.inf)


def solved_matrix(summary: pd.DataFrame, level: str | None = None) -> pd.DataFrame:
    """As `cost_matrix`: True where at least half the pair's evaluation seeds succeed."""
    rates = instance_matrix(summary, success_column, level)
    return rates.fillna(0.0) >= 0.5


def problems_of(times: pd.DataFrame) -> np.ndarray:
    """The problem of each row of a cost matrix (indexed by instance, or by problem)."""
    index = times.index
    return np.asarray(index.get_level_values(0) if isinstance(index, pd.MultiIndex) else index)


def performance_ratios(times: np.ndarray) -> np.ndarray:
    """Performance ratios r = t / min t over the last axis (optimizers); cost 0 ties at 1."""
    best = times.min(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(times == best, 1.0, times / best)


def problem_scores(times: np.ndarray) -> np.ndarray:
    """Each instance's part of the integrated profile score, per optimizer.

    times: [..., instances, optimizers] median costs, +inf where unsolved.
    The integral of [r <= tau] over tau in [1, MAX_RATIO], divided by MAX_RATIO - 1, is
    (MAX_RATIO - r) / (MAX_RATIO - 1) clipped to [0, 1]; the overall score is its mean
    over instances. NaN on an instance no optimizer solves (it carries no information).
    """
    scores = np.clip((MAX_RATIO - performance_ratios(times)) / (MAX_RATIO - 1.0), 0.0, 1.0)
    return np.where(np.isfinite(times.min(axis=-1, keepdims=True)), scores, np.nan)


def performance_profile(
    summary: pd.DataFrame, taus: np.ndarray, cost: str = DEFAULT_COST
) -> pd.DataFrame:
    """Dolan-More profile over median cost (`cost_matrix`): rho_s(tau) per optimizer.

    r[i, s] = t[i, s] / min_s t[i, s]; rho_s(tau) = share of instances with r <= tau.
    Instances that no optimizer solves carry no information and are left out.
    Returns a frame indexed by tau, one column per optimizer.
    """
    times = cost_matrix(summary, cost)
    times = times[np.isfinite(times).any(axis=1)]
    ratios = performance_ratios(times.to_numpy())
    profile = (ratios[None] <= np.asarray(taus)[:, None, None]).mean(axis=1)
    return pd.DataFrame(profile, index=pd.Index(taus, name="tau"), columns=times.columns)


def mean_scores(times: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """problem_scores averaged over the instances some optimizer solves (0 when none does).

    times: [..., instances, optimizers]; returns [..., optimizers]. counted: where given,
    [instances, optimizers] True on the instances each optimizer's mean is taken over.
    """
    scores = problem_scores(times)
    averaged = np.isfinite(scores) if counted is None else np.isfinite(scores) & counted
    total = np.where(averaged, scores, 0.0).sum(axis=-2)
    return total / np.maximum(averaged.sum(axis=-2), 1)


def integrated_scores(
    summary: pd.DataFrame, cost: str = DEFAULT_COST, level: str | None = None
) -> pd.Series:
    """AlgoPerf-style score: (1 / (r_max - 1)) * integral of rho_s(tau) for tau in [1, r_max],
    over the instances of `level` (`instances`; None: the headline's)."""
    times = cost_matrix(summary, cost, level)
    return pd.Series(mean_scores(times.to_numpy()), index=times.columns, name="score")


def runnable(summary: pd.DataFrame, skipped: pd.DataFrame | None) -> pd.DataFrame:
    """Problems x optimizers of `summary` (the `ranked` rows), sorted as in `cost_matrix`:
    False where `skipped` (skipped.csv: problem, optimizer, reason; None: none) lists the
    pair, a problem the optimizer cannot run (docs/method.md, "Ranking": coverage)."""
    problems, optimizers = (sorted(summary[c].unique()) for c in PAIR)
    frame = pd.DataFrame(True, index=problems, columns=optimizers)
    if skipped is None:
        return frame
    listed = skipped[skipped["problem"].isin(frame.index) & skipped["optimizer"].isin(frame)]
    for problem, optimizer in listed[PAIR].itertuples(index=False, name=None):
        frame.loc[problem, optimizer] = False
    return frame


def runnable_scores(summary: pd.DataFrame, cost: str, can_run: pd.DataFrame) -> pd.Series:
    """The profile score of each optimizer over the problems it can run (`can_run`, as
    `runnable` gives it): its per-instance scores against every optimizer, averaged over
    the instances some optimizer solves of the problems it can run (0 when none)."""
    times = cost_matrix(summary, cost)
    counted = runnable_instances(can_run, times).to_numpy(bool)
    scores = mean_scores(times.to_numpy(), counted)
    return pd.Series(scores, index=times.columns, name="score_run")


def runnable_instances(can_run: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """`can_run` (problems x optimizers, `runnable`) spread over the instances of `times`
    (a cost matrix): each instance as its problem."""
    rows = can_run.reindex(index=problems_of(times), columns=times.columns)
    return pd.DataFrame(rows.to_numpy(bool), index=times.index, columns=times.columns)


def data_profile(summary: pd.DataFrame, dims: dict[str, int], budgets: np.ndarray) -> pd.DataFrame:
    """Moré-Wild data profile: share of instances solved within each budget, per optimizer.

    A budget counts in units of d + 1 gradient evaluations (d: the problem's parameter
    count, `dims`), what a finite-difference gradient costs in function evaluations, so
    that problems of different sizes share one axis. Over every instance of `summary`
    (`instances`) whose problem is in `dims`, solved by someone or not. Returns a frame
    indexed by budget, one column per optimizer.
    """
    return solved_within(cost_matrix(summary, "grad_evals"), dims, budgets)


def solved_within(times: pd.DataFrame, dims: dict[str, int], budgets: np.ndarray) -> pd.DataFrame:
    """The data profile of `times` (a cost matrix of gradient evaluations, +inf where
    unsolved): per budget in units of d + 1, the share of its rows whose problem is in
    `dims` each optimizer solves within it."""
    times = times[np.isin(problems_of(times), list(dims))]
    units = times.div([dims[problem] + 1 for problem in problems_of(times)], axis=0).to_numpy()
    solved = (units[None] <= np.asarray(budgets)[:, None, None]).mean(axis=1)
    return pd.DataFrame(solved, index=pd.Index(budgets, name="budget"), columns=times.columns)
