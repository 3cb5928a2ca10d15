"""TABLES.md: one convergence table per problem, optimizers ranked, and an overall ranking."""

import math

import pandas as pd

from bench import tuning


def _number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def _cost(x: float, axis: str) -> str:
    """A median cost to target: 'never' when unreached, 'n/a' when not recorded."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never"
    return f"{x:.3g}" if axis == "seconds" else f"{x:g}"


def _share(x: float) -> str:
    return f"{100 * x:.0f}%"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def overall_table(summary: pd.DataFrame, cost: str) -> str:
    ranking = tuning.overall_ranking(summary, cost)
    rows = [
        [
            str(r.overall_rank),
            f"`{r.optimizer}`",
            f"{r.score:.3f}",
            f"{r.solved}/{r.problems}",
            f"{r.mean_rank:.1f}",
        ]
        for r in ranking.itertuples()
    ]
    return markdown(["rank", "optimizer", "profile score", "solved", "mean rank"], rows)


def problem_table(summary: pd.DataFrame) -> str:
    metrics = [c for c in summary.columns if c.startswith("median_") and c not in _FIXED]
    header = ["rank", "optimizer", "tuned lr", "median f - f*", "IQR f - f*"]
    header += [f"{tuning.COST_LABELS[axis]} to target" for axis in tuning.COSTS]
    header += ["success", "tuneability", "diverged lanes"]
    header += [m.removeprefix("median_").replace("_", " ") for m in metrics]
    rows = []
    for r in summary.itertuples():
        row = [
            str(r.rank),
            f"`{r.optimizer}`",
            f"{r.learning_rate:.3g}",
            _number(r.median_final_suboptimality),
            f"[{_number(r.q25_final_suboptimality)}, {_number(r.q75_final_suboptimality)}]",
            *(_cost(getattr(r, f"median_{axis}_to_target"), axis) for axis in tuning.COSTS),
            _share(r.success_rate),
            _share(r.tuneability),
            _share(r.diverged_share),
        ]
        rows.append(row + [_number(getattr(r, m)) for m in metrics])
    return markdown(header, rows)


_FIXED = {
    "median_final_suboptimality",
    "median_best_suboptimality",
    *(f"median_{axis}_to_target" for axis in tuning.COSTS),
}


def document(summary: pd.DataFrame, runs: pd.DataFrame, skipped: pd.DataFrame, cost: str) -> str:
    """The whole TABLES.md, from the summary, the runs (for problem facts) and skipped pairs."""
    facts = runs.groupby("problem", sort=True)[["f_star", "target", "steps"]].first()
    tune = tuning.lanes_of(runs, "tune")
    seeds = int(tune.groupby(["problem", "optimizer", "learning_rate"]).size().max())
    evals = int(summary["seeds"].min())
    parts = [
        "# Benchmark tables",
        "",
        f"Every optimizer at its tuned learning rate, tuned on {seeds} seeds per learning "
        f"rate and reported over at least {evals} evaluation seeds of the tuned one. "
        f"Tuned and ranked by {tuning.COST_LABELS[cost]} to target. "
        "Tuning rule, ranking and columns are explained in the README "
        "(section *The benchmark*). Costs to target are medians over evaluation seeds; "
        "*success*: seeds that reach the target; *tuneability*: share of the "
        "learning-rate grid that reaches the target within "
        f"{tuning.MAX_RATIO:g}x the tuned cost (when the tuned setting misses it: "
        f"within {tuning.TUNEABLE_FACTOR:g}x its final f - f*).",
        "",
        "## Overall ranking",
        "",
        "Score: the AlgoPerf-style integral of the Dolan-More performance profile over "
        f"median {tuning.COST_LABELS[cost]} to target, for ratios 1 to {tuning.MAX_RATIO:g} "
        "(1 = fastest on every problem). *solved*: problems where at least half the seeds "
        "reach the target.",
        "",
        overall_table(summary, cost),
    ]
    for problem, table in summary.groupby("problem", sort=True):
        f_star, target, steps = facts.loc[problem]
        parts += [
            "",
            f"## {problem}",
            "",
            f"f* = {f_star:.10g}, target f - f* <= {target:g}, {int(steps)} steps.",
            "",
            problem_table(table),
        ]
    if len(skipped):
        parts += ["", "## Skipped pairs", ""]
        rows = [[r.problem, f"`{r.optimizer}`", r.reason] for r in skipped.itertuples()]
        parts.append(markdown(["problem", "optimizer", "reason"], rows))
    return "\n".join(parts) + "\n"
