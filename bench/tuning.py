"""Picks each optimizer's learning rate per problem from the swept grid, and scores it.

Tuning rule: the learning rate with the lowest median (over seeds) final
suboptimality f - f* wins, a diverged lane counting as +inf; ties go to the smaller
median steps-to-target (unreached counting as +inf), then to the smaller learning
rate. With cross-validation (`cv_loss` present) the median held-out loss, averaged
over folds, replaces the final suboptimality as the score.

Reported at the tuned learning rate, over seeds: median final suboptimality and its
interquartile range, median steps-to-target, success rate (share of seeds that reach
the target without diverging), and over the grid: tuneability (share of learning
rates whose median score is within 10x of the best one, scores below the problem's
target counting as the target, since every such point solves the problem) and the
share of diverged lanes.

Ranking within a problem: higher success rate, then fewer median steps-to-target,
then lower median final suboptimality.
"""

import numpy as np
import pandas as pd

PAIR = ["problem", "optimizer"]
# Columns of runs.csv that are not end-of-run problem metrics (such as test_accuracy).
STANDARD = {
    "problem",
    "optimizer",
    "learning_rate",
    "seed",
    "f_star",
    "target",
    "steps",
    "final_loss",
    "best_loss",
    "final_suboptimality",
    "best_suboptimality",
    "final_grad_norm",
    "steps_to_target",
    "diverged",
    "cv_loss",
    "compile_seconds",
    "run_seconds",
}
# A learning rate is "tuneable" when its median score is within this factor of the best.
TUNEABLE_FACTOR = 10.0


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """End-of-run problem metrics present in `runs` (test accuracy and the like)."""
    return [c for c in runs.columns if c not in STANDARD and pd.api.types.is_numeric_dtype(runs[c])]


def _scored(runs: pd.DataFrame) -> pd.DataFrame:
    objective = runs["cv_loss"] if "cv_loss" in runs else runs["final_suboptimality"]
    bad = runs["diverged"].astype(bool) | ~np.isfinite(objective)
    reached = (runs["steps_to_target"] >= 0) & ~runs["diverged"].astype(bool)
    return runs.assign(
        score=np.where(bad, np.inf, objective),
        steps_or_inf=np.where(reached, runs["steps_to_target"], np.inf),
        success=reached.astype(float),
    )


def grid_medians(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, optimizer, learning rate): median score and steps over seeds."""
    return (
        _scored(runs)
        .groupby([*PAIR, "learning_rate"], sort=True)[["score", "steps_or_inf"]]
        .median()
        .reset_index()
    )


def tuned_learning_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, optimizer): the chosen learning_rate and its median score."""
    medians = grid_medians(runs).sort_values(
        [*PAIR, "score", "steps_or_inf", "learning_rate"], kind="stable"
    )
    return medians.groupby(PAIR, sort=True).head(1).reset_index(drop=True)


def _quantile(values: pd.Series, q: float) -> float:
    """Linear-interpolated quantile in which +inf (diverged, never reached) is a value.

    np.quantile computes inf - inf = nan between two infinite neighbours; here the
    quantile between two equal values is that value.
    """
    x = np.sort(values.to_numpy(float))
    position = q * (len(x) - 1)
    low, high = x[int(np.floor(position))], x[int(np.ceil(position))]
    return float(low if low == high else low + (high - low) * (position - np.floor(position)))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, optimizer) at its tuned learning rate, ranked within each problem."""
    scored = _scored(runs)
    tuned = tuned_learning_rates(runs)
    medians = grid_medians(runs)
    metrics = metric_columns(runs)
    by_pair = dict(list(scored.groupby(PAIR, sort=True)))
    grids = dict(list(medians.groupby(PAIR, sort=True)))
    rows = []
    for pick in tuned.itertuples(index=False):
        pair, grid = by_pair[pick.problem, pick.optimizer], grids[pick.problem, pick.optimizer]
        lanes = pair[pair["learning_rate"] == pick.learning_rate]
        gap = lanes["final_suboptimality"].where(~lanes["diverged"].astype(bool), np.inf)
        threshold = TUNEABLE_FACTOR * max(pick.score, float(pair["target"].iloc[0]))
        row = {
            "problem": pick.problem,
            "optimizer": pick.optimizer,
            "learning_rate": pick.learning_rate,
            "tuned_on": "cv_loss" if "cv_loss" in runs else "final_suboptimality",
            "seeds": len(lanes),
            "median_final_suboptimality": _quantile(gap, 0.5),
            "q25_final_suboptimality": _quantile(gap, 0.25),
            "q75_final_suboptimality": _quantile(gap, 0.75),
            "median_best_suboptimality": float(lanes["best_suboptimality"].median()),
            "median_steps_to_target": _quantile(lanes["steps_or_inf"], 0.5),
            "success_rate": float(lanes["success"].mean()),
            "tuneability": float((grid["score"] <= threshold).mean()),
            "diverged_share": float(pair["diverged"].astype(bool).mean()),
            "steps": int(pair["steps"].iloc[0]),
        }
        if "cv_loss" in runs:
            row["median_cv_loss"] = float(lanes["cv_loss"].median())
        row |= {f"median_{m}": float(lanes[m].median()) for m in metrics}
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary = summary.sort_values(
        ["problem", "success_rate", "median_steps_to_target", "median_final_suboptimality"],
        ascending=[True, False, True, True],
        kind="stable",
    )
    summary.insert(2, "rank", summary.groupby("problem").cumcount() + 1)
    return summary.reset_index(drop=True)


def performance_profile(summary: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """Dolan-More profile over median steps-to-target: rho_s(tau) per optimizer.

    r[p, s] = t[p, s] / min_s t[p, s]; rho_s(tau) = share of problems with r <= tau.
    Problems that no optimizer solves carry no information and are left out.
    Returns a frame indexed by tau, one column per optimizer.
    """
    steps = summary.pivot(index="problem", columns="optimizer", values="median_steps_to_target")
    steps = steps[np.isfinite(steps).any(axis=1)]
    # A problem solved in 0 steps (started at the target) counts as 1 step, to keep ratios finite.
    steps = steps.clip(lower=1)
    ratios = steps.div(steps.min(axis=1), axis=0).fillna(np.inf)
    profile = {opt: [(ratios[opt] <= tau).mean() for tau in taus] for opt in ratios.columns}
    return pd.DataFrame(profile, index=pd.Index(taus, name="tau"))


# AlgoPerf integrates the profile up to a ratio of 4 and normalises by the range.
MAX_RATIO = 4.0


def integrated_scores(summary: pd.DataFrame) -> pd.Series:
    """AlgoPerf-style score: (1 / (r_max - 1)) * integral of rho_s(tau) for tau in [1, r_max]."""
    taus = np.linspace(1.0, MAX_RATIO, 601)
    profile = performance_profile(summary, taus)
    area = np.trapezoid(profile.to_numpy(), taus, axis=0) / (MAX_RATIO - 1.0)
    return pd.Series(area, index=profile.columns, name="score")


def overall_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer: integrated profile score, problems solved, mean rank."""
    scores = integrated_scores(summary)
    per_optimizer = summary.groupby("optimizer").agg(
        problems=("problem", "size"),
        solved=("success_rate", lambda s: int((s >= 0.5).sum())),
        mean_rank=("rank", "mean"),
    )
    table = per_optimizer.join(scores).fillna({"score": 0.0}).reset_index()
    table = table.sort_values(["score", "mean_rank", "optimizer"], ascending=[False, True, True])
    table.insert(0, "overall_rank", np.arange(1, len(table) + 1))
    return table[["overall_rank", "optimizer", "score", "solved", "problems", "mean_rank"]]
