"""Performance and data profiles over tuned pairs: what the overall ranking and its figures
are computed from (docs/method.md, "Ranking").

Every function takes the `ranked` rows of a summary (`bench.analysis.tuning.summarize`):
one row per tuned (problem, optimizer), with its median cost to target on each axis.
"""

from collections.abc import Collection

import numpy as np
import pandas as pd

from bench.analysis.tuning import DEFAULT_COST, MAX_RATIO, PAIR, lanes_of

# Moré and Wild's convergence test f(x0) - f(x) >= (1 - tau) (f(x0) - f_L): the taus of the
# data profiles at each tau (`costs_at_taus`), where a folder's spec names none.
TAUS = (1e-1, 1e-3, 1e-5, 1e-7)


def ranked(summary: pd.DataFrame, models: Collection[str]) -> pd.DataFrame:
    """The rows the overall ranking, the profiles and their statistics are computed over:
    every problem but a model family (`models`, problems.csv's `model_family`) on which
    the suite ran only some of the run's optimizers (`[models]` in bench/suite.toml),
    where a rule not run would count as failing a problem it was never given. Those
    problems keep their own tables."""
    everyone = summary["optimizer"].nunique()
    run_by = summary.groupby("problem")["optimizer"].nunique()
    declined = [p for p in run_by[run_by < everyone].index if p in set(models)]
    return summary[~summary["problem"].isin(declined)]


def cost_matrix(summary: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Median cost to target, problems x optimizers; +inf where unsolved or not run.
    `summary`: the `ranked` rows, as every profile below takes them."""
    times = summary.pivot(index="problem", columns="optimizer", values=f"median_{cost}_to_target")
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


def mean_scores(times: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """problem_scores averaged over the problems some optimizer solves (0 when none does).

    times: [..., problems, optimizers]; returns [..., optimizers]. counted: where given,
    [problems, optimizers] True on the problems each optimizer's mean is taken over.
    """
    scores = problem_scores(times)
    averaged = np.isfinite(scores) if counted is None else np.isfinite(scores) & counted
    total = np.where(averaged, scores, 0.0).sum(axis=-2)
    return total / np.maximum(averaged.sum(axis=-2), 1)


def integrated_scores(summary: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.Series:
    """AlgoPerf-style score: (1 / (r_max - 1)) * integral of rho_s(tau) for tau in [1, r_max]."""
    times = cost_matrix(summary, cost)
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
    `runnable` gives it): its per-problem scores against every optimizer, averaged over
    the problems some optimizer solves that it can run (0 when none)."""
    times = cost_matrix(summary, cost)
    counted = can_run.reindex(index=times.index, columns=times.columns).to_numpy(bool)
    scores = mean_scores(times.to_numpy(), counted)
    return pd.Series(scores, index=times.columns, name="score_run")


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
        # pandas-stubs allow only a list or an Index here; pandas takes any array-like
        sorted(facts.index.intersection(lanes["problem"])),  # pyright: ignore[reportArgumentType]
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
