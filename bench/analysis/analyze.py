"""One analysis of a results folder's tables, computed once per render and handed to every
view (TABLES.md, summary.csv, ranking.csv, the figures, index.html).

What each number means is defined in docs/method.md; this module only puts the pieces
of this wing together: the tuning rule (`tuning.summarize`), the intervals and tests
(`stats`), the profiles over the ranked problems (`profiles`) and the tuning budgets
(`budget`).
"""

from dataclasses import dataclass

import pandas as pd

from bench.analysis import budget, profiles, stats, tuning
from bench.results import schema


@dataclass(frozen=True)
class Analysis:
    """Everything the views show, computed once.

    cost: the axis of tuning and ranking. summary: every tuned pair with its intervals
    (summary.csv). ranked: the rows of `summary` the overall ranking and the profiles
    are computed over (`profiles.ranked`). ranking: the overall ranking (ranking.csv).
    per_problem: each ranked problem's profile score per optimizer. pairwise: Wilcoxon
    tests among the ranking's top `stats.PAIRWISE_TOP`. budgets: expected best score
    against the number of trials (budget_curves.csv). at_taus: per tau, the gradient
    evaluations to target of each (problem, optimizer) whose problem has f(x0) and f*
    in problems.csv. facts: one row per problem of problems.csv's columns (what it is,
    f(x0) and f* where the run resolved them).
    """

    cost: str
    summary: pd.DataFrame
    ranked: pd.DataFrame
    ranking: pd.DataFrame
    per_problem: pd.DataFrame
    pairwise: pd.DataFrame
    budgets: pd.DataFrame
    at_taus: dict[float, pd.DataFrame]
    facts: pd.DataFrame

    @property
    def left_out(self) -> list[str]:
        """The problems of the summary that the overall ranking leaves out."""
        return sorted(set(self.summary["problem"]) - set(self.ranked["problem"]))

    @property
    def dims(self) -> dict[str, int]:
        """The parameter count of every problem the facts give one."""
        known = self.facts.dropna(subset=["dim"])
        return dict(zip(known["problem"], known["dim"].astype(int), strict=True))


def analyze(
    tables: dict[str, pd.DataFrame | None], cost: str, facts: pd.DataFrame, taus=()
) -> Analysis:
    """The analysis of `tables` (a folder's raw tables by name, as `schema.read` gives
    them) tuned and ranked by `cost` (a column `tuning.recorded_cost` found).

    facts: one row per problem (problems.csv's columns: dim, description, tags,
    model_family, and f0 / f_star where the run resolved them); `taus`: the levels of the
    data profiles where facts give f0 (none: no data profiles at each tau).
    Raises tuning.MissingEvalLanes when a tuned setting has no evaluation lanes, and
    ValueError when `tables` hold no runs (or no curves, where the data profiles need them).
    """
    runs = tables["runs"]
    if runs is None:
        raise ValueError("the tables hold no runs to analyse")
    summary = stats.with_intervals(tuning.summarize(runs, cost), runs)
    models = facts.loc[facts["model_family"].fillna(False).astype(bool), "problem"]
    ranked = profiles.ranked(summary, set(models))
    ranking = stats.overall_ranking(ranked, runs, cost)
    per_problem = stats.per_problem_scores(ranked, cost)
    top = ranking["optimizer"].head(stats.PAIRWISE_TOP).tolist()
    at_taus = {}
    if taus and facts["f0"].notna().any():
        curves = tables["curves"]
        if curves is None:
            raise ValueError("the tables hold no curves to draw the data profiles from")
        at_taus = profiles.costs_at_taus(curves, runs, facts, taus)
    return Analysis(
        cost=cost,
        summary=summary,
        ranked=ranked,
        ranking=ranking,
        per_problem=per_problem,
        pairwise=stats.pairwise(per_problem, top),
        budgets=budget.budget_curves(runs, cost),
        at_taus=at_taus,
        facts=facts,
    )


def complete_facts(*frames: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of problems.csv, one per problem: each column of a problem from the first of
    `frames` that gives it (a folder's own rows first, then what the caller knows of the
    problems an older folder does not describe), every column of `schema.PROBLEM_FACTS`."""
    given = [f for f in frames if f is not None and len(f)]
    facts = pd.concat(given, ignore_index=True) if given else pd.DataFrame()
    facts = facts.reindex(columns=list(schema.PROBLEM_FACTS))
    return facts.groupby("problem", sort=False).first().reset_index()
