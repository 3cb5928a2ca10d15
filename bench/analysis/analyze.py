"""One analysis of a results folder's tables, computed once per render and handed to every
view (TABLES.md, summary.csv, ranking.csv, the figures, index.html).

What each number means is defined in docs/method.md; this module only puts the pieces
of this wing together: the tuning rule (`tuning.summarize`), the intervals, rank
intervals and groups (`stats`), the profiles over the ranked problems (`profiles`), the
claims against a reference and under other definitions (`claims`), the tuning
budgets (`budget`) and the runtime views, COCO's ECDF and expected runtime, win rates and
the breakdown by group (`runtime`).
"""

from dataclasses import dataclass

import pandas as pd

from bench.analysis import budget, claims, profiles, runtime, stats, tuning
from bench.results import schema


@dataclass(frozen=True)
class Analysis:
    """Everything the views show, computed once.

    cost: the axis of tuning and ranking. summary: every tuned pair with its intervals
    (summary.csv). ranked: the rows of `summary` the overall ranking and the profiles
    are computed over (`profiles.ranked`). ranking: the overall ranking (ranking.csv).
    reference: the rule `head_to_head` compares every other with (head_to_head.csv).
    identical: the sets of rules that behave identically (`claims.identical`).
    robustness: each definition's scores, best first (`claims.robustness`; None where
    the folder does not record it). levels: the score restricted to each level and to
    the own target, per rule in ranking order (`claims.level_scores`; only the own
    target where the folder records no levels). budgets: expected best score against
    the number of trials (budget_curves.csv.gz). facts: one row per problem of
    problems.csv's columns (what it is, f(x0) and f*). groups: each ranked problem's
    group (`runtime.problem_groups`). The runtime views (`runtime`, over the ranked
    instances): ecdf, the runtime ECDF per group (runtime_ecdf.csv.gz); ert, the expected
    runtime per pair and instance (ert.csv.gz), and ert_summary, its share finite and median
    ratio to the best per rule and group; win_rate, the pairwise win rates in ranking
    order (win_rate.csv); group_scores, the score and rank in each group (groups.csv;
    empty with one group); informative, the instances each group's rules tell apart.
    """

    cost: str
    summary: pd.DataFrame
    ranked: pd.DataFrame
    ranking: pd.DataFrame
    reference: str
    head_to_head: pd.DataFrame
    identical: list[list[str]]
    robustness: dict[str, pd.Series | None]
    levels: pd.DataFrame
    budgets: pd.DataFrame
    facts: pd.DataFrame
    groups: pd.Series
    ecdf: pd.DataFrame
    ert: pd.DataFrame
    ert_summary: pd.DataFrame
    win_rate: pd.DataFrame
    group_scores: pd.DataFrame
    informative: pd.DataFrame

    @property
    def left_out(self) -> list[str]:
        """The problems of the summary that the overall ranking leaves out."""
        return sorted(set(self.summary["problem"]) - set(self.ranked["problem"]))

    @property
    def records_levels(self) -> bool:
        """Whether the ranked problems are scored at the relative levels (else at each
        problem's own target: a folder written before the levels)."""
        return profiles.records_levels(self.ranked)

    @property
    def breakdown(self) -> list[str]:
        """What the runtime views break down by: the overall, then each group where the
        ranked problems fall in more than one (`runtime.breakdown`)."""
        return runtime.breakdown(self.groups)

    @property
    def dims(self) -> dict[str, int]:
        """The parameter count of every problem the facts give one."""
        return dims_of(self.facts)


def dims_of(facts: pd.DataFrame) -> dict[str, int]:
    """The parameter count of every problem of `facts` (problems.csv's rows) that gives one."""
    known = facts.dropna(subset=["dim"])
    return dict(zip(known["problem"], known["dim"].astype(int), strict=True))


def analyze(
    tables: dict[str, pd.DataFrame | None],
    cost: str,
    facts: pd.DataFrame,
    reference: str | None = None,
) -> Analysis:
    """The analysis of `tables` (a folder's raw tables by name, as `schema.read` gives
    them) tuned and ranked by `cost` (a column `tuning.recorded_cost` found).

    facts: one row per problem (problems.csv's columns: dim, description, tags,
    model_family, group, and f0 / f_star); `reference`: the rule of the head-to-head
    comparisons (default `claims.reference_of`'s).
    Raises tuning.MissingEvalLanes when a tuned setting has no evaluation lanes,
    claims.UnknownReference for a `reference` the ranking does not hold, and ValueError
    when `tables` hold no runs.
    """
    runs = tables["runs"]
    if runs is None:
        raise ValueError("the tables hold no runs to analyse")
    summary = stats.with_intervals(tuning.summarize(runs, cost), runs)
    models = facts.loc[facts["model_family"].fillna(False).astype(bool), "problem"]
    ranked = profiles.ranked(summary, set(models))
    can_run = profiles.runnable(ranked, tables.get("skipped"))
    ranking = stats.overall_ranking(ranked, runs, cost, can_run)
    order = ranking["optimizer"].tolist()
    reference = claims.reference_of(ranking, reference)
    times = profiles.cost_matrix(ranked, cost)
    can_run_instances = profiles.runnable_instances(can_run, times)
    groups = runtime.problem_groups(ranked, facts)
    lanes = runtime.lane_costs(ranked, runs, cost)
    ert = runtime.expected_runtimes(lanes, order)
    return Analysis(
        cost=cost,
        summary=summary,
        ranked=ranked,
        ranking=ranking,
        reference=reference,
        head_to_head=claims.head_to_head(ranked, cost, reference, can_run, order),
        identical=claims.identical(ranked, runs, order),
        robustness=claims.robustness(ranked, runs, cost, ranking),
        levels=claims.level_scores(ranked, cost, order),
        budgets=budget.budget_curves(runs, cost),
        facts=facts,
        groups=groups,
        ecdf=runtime.runtime_ecdf(lanes, times.index, dims_of(facts), groups, order),
        ert=ert,
        ert_summary=runtime.ert_summary(ert, times.index, groups, order),
        win_rate=runtime.win_rates(times, can_run_instances, order),
        group_scores=runtime.group_scores(times, groups, order),
        informative=runtime.informativeness(times, can_run_instances, groups),
    )


def complete_facts(*frames: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of problems.csv, one per problem: each column of a problem from the first of
    `frames` that gives it (a folder's own rows first, then what the caller knows of the
    problems an older folder does not describe), every column of `schema.PROBLEM_FACTS`."""
    given = [f for f in frames if f is not None and len(f)]
    facts = pd.concat(given, ignore_index=True) if given else pd.DataFrame()
    facts = facts.reindex(columns=list(schema.PROBLEM_FACTS))
    return facts.groupby("problem", sort=False).first().reset_index()
