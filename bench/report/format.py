"""Formatting shared by the views: numbers, costs, intervals, shares, the ranking's rows and
groups, head-to-head cells, the robustness headline, the runtime views' cells and file
names."""

import math
from typing import Any

import pandas as pd

from bench.analysis import profiles, runtime, tuning
from bench.analysis.claims import robust_top


def number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


# The summary's medians that every pair has: its outcome and its costs to the target.
_REPORTED = {"median_final_suboptimality", "median_best_suboptimality"}


def metric_columns(summary: pd.DataFrame) -> list[str]:
    """The summary's medians of the problem's own metrics (`median_test_accuracy`,
    `median_cv_loss`, ...) that some row of `summary` holds: what a problem's table shows
    after the costs."""
    return [
        c
        for c in summary.columns
        if c.startswith("median_")
        and c not in _REPORTED
        and not c.endswith("_to_target")
        and "_to_tau_" not in c
        and summary[c].notna().any()
    ]


def setting(x: float) -> str:
    """A tuned hyperparameter: 3 significant digits, more where fewer would hide its
    distance from 1 (a b2 of 0.99977 is not "1"): each of x and 1 - x to within 1%."""
    if x is None or not math.isfinite(x):
        return number(x)
    for digits in range(3, 17):
        text = f"{x:.{digits}g}"
        error = abs(float(text) - x)
        if error <= 0.01 * abs(x) and error <= 0.01 * abs(1.0 - x):
            return text
    return repr(x)


def cost_text(x: float, axis: str) -> str:
    """A median cost to target: 'never' when unreached, 'n/a' when not recorded."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never"
    return f"{x:.3g}" if axis == "seconds" else f"{x:g}"


def field(r, name: str):
    """Column `name` of a row: a dict (`to_dict("records")`) or a named tuple."""
    return r[name] if isinstance(r, dict) else getattr(r, name)


def interval(r, name: str, show) -> str:
    """A summary median with its bootstrap interval: 'median [low, high]'."""
    median, low, high = (field(r, f"{k}_{name}") for k in ("median", "ci_low", "ci_high"))
    if math.isnan(median) or (math.isinf(median) and low == median):  # not recorded; never
        return show(median)
    return f"{show(median)} [{show(low)}, {show(high)}]"


def share(x: float) -> str:
    return f"{100 * x:.0f}%"


def level_cell(r, cost: str, level: str) -> str:
    """A pair's cell at a level (a summary row): its median cost on axis `cost` and its
    success rate, '120 (100%)', 'never (40%)'; '-' where the level is not resolved."""
    median = field(r, tuning.summary_level_column(cost, level))
    rate = field(r, tuning.success_column(level))
    if math.isnan(rate):
        return "-"
    return f"{cost_text(median, cost)} ({share(rate)})"


def edge_mark(r: dict) -> str:
    """' (low edge)' or ' (high edge)' where a summary row's tuned learning rate sits at an
    edge of its grid (`grid_edge`), else ''."""
    edge = r.get("grid_edge")
    return f" ({edge} edge)" if isinstance(edge, str) and edge else ""


def problem_levels(summary) -> list[str]:
    """The levels one problem's summary rows resolve (`profiles.resolved_levels`)."""
    return [level for found in profiles.resolved_levels(summary).values() for level in found]


def solved_text(r) -> str:
    """A ranking row's instances solved of those ranked: '34/60'."""
    return f"{r.solved}/{r.instances}"


def both_solved_text(r) -> str:
    """A head-to-head row's instances both solve, and over how many problems where that
    is another number (a problem counted at several levels)."""
    if r.both_solved == r.both_solved_problems:
        return str(r.both_solved)
    return f"{r.both_solved} ({counted(r.both_solved_problems, 'problem')})"


def levels_line(recorded: bool, cost: str) -> str:
    """What the ranking counts as an instance, in one sentence."""
    label = tuning.COST_LABELS[cost]
    if not recorded:
        return (
            "This folder records no relative levels (its runs.csv.gz was written before "
            f"them): tuned and ranked by {label} to each problem's own target."
        )
    names = ", ".join(tuning.LEVELS)
    return (
        f"Tuned and ranked by {label} to lasting success at the relative levels {names} "
        "(f - f* <= tau (f(x0) - f*)): every (problem, level) the run's dtype resolves is "
        "one instance of the ranking."
    )


def edge_line(summary) -> str:
    """How many tuned pairs sit at an edge of their learning-rate grid (`grid_edge`)."""
    edges = summary["grid_edge"].fillna("")
    at_edge, total = int((edges != "").sum()), len(summary)
    low, high = int((edges == "low").sum()), int((edges == "high").sum())
    return (
        f"{at_edge} of {counted(total, 'tuned pair')} ({share(at_edge / max(total, 1))}) "
        f"sit at an edge of their learning-rate grid ({low} at the low end, {high} at the "
        "high end; the goal is under 10%): the grid may not hold their best setting."
    )


def joined(ranking, identical: list[list[str]]) -> list[tuple[list[str], Any]]:
    """The rows of the ranking as the views show them: (names, row), one row per set of
    identical rules (`claims.identical`) with every member's name, at the place and
    with the numbers of its best-ranked member."""
    sets = {members[0]: members for members in identical}
    later = {name for members in identical for name in members[1:]}
    return [
        (sets.get(r.optimizer, [r.optimizer]), r)
        for r in ranking.itertuples()
        if r.optimizer not in later
    ]


def groups(ranking, identical: list[list[str]]) -> dict[int, list[list[str]]]:
    """Each group of the ranking (`stats.groups`) -> the names of its rows, as `joined`."""
    members = {}
    for names, r in joined(ranking, identical):
        members.setdefault(int(r.group), []).append(names)
    return members


def rank_interval(r) -> str:
    """A row's 95% rank interval: '3-12', or '3' where it is one rank."""
    return f"{r.rank_low}" if r.rank_low == r.rank_high else f"{r.rank_low}-{r.rank_high}"


def ratio_text(r) -> str:
    """A head-to-head cost ratio with its interval; 'n/a' without problems both solve."""
    if math.isnan(r.ratio):
        return "n/a"
    return f"{r.ratio:.3g} [{r.ratio_low:.3g}, {r.ratio_high:.3g}]"


def detectable_text(r) -> str:
    """The detectable ratio of a head-to-head row, or why there is none."""
    if math.isnan(r.detectable_ratio):
        return f"cannot reject with {counted(r.differing, 'differing problem')}"
    return f"{r.detectable_ratio:.3g}"


def counted(count: int, noun: str) -> str:
    """'1 problem', '2 problems'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def slug(problem: str) -> str:
    """A problem's name as a file name: characters other than letters, digits, -, _ and .
    become _."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in problem)


def robust_line(definitions: dict, count: int, quote: str = "") -> str:
    """The headline of the robustness table (`claims.robustness`): the rules in the top
    `count` under every definition recorded, each name between `quote`s."""
    recorded = sum(scores is not None for scores in definitions.values())
    names = ", ".join(f"{quote}{name}{quote}" for name in robust_top(definitions, count))
    return (
        f"In the top {count} under every one of the {recorded} definitions recorded here: "
        f"{names or 'no rule'}."
    )


# The runtime views' tables show the top of the overall ranking, their win-rate heat map
# a larger top.
RUNTIME_TOP = 10
WIN_RATE_TOP = 20


def top_rows(ranking, identical: list[list[str]], count: int = RUNTIME_TOP) -> list:
    """The first `count` rows of the ranking as the views show them (`joined`)."""
    return joined(ranking, identical)[:count]


def by_group(table) -> dict:
    """The rows of a table of (group, optimizer) rows (`runtime.ert_summary`, groups.csv)
    as named tuples, by (group, optimizer)."""
    return {(r.group, r.optimizer): r for r in table.itertuples()}


def ert_cell(row) -> str:
    """A rule's ERT cell in one group (a row of `runtime.ert_summary`): the share of
    instances with a finite ERT and the median ratio to the best over those, '83% · 1.40';
    '0%' where it has none. Ratios with two decimals, so that a column aligns."""
    if not row.finite:
        return share(row.share)
    return f"{share(row.share)} · {row.median_ratio:.2f}"


def win_cell(rate: float) -> str:
    """A win rate: '0.75'; '-' where there is none (the diagonal, nothing both can run)."""
    return "-" if math.isnan(rate) else f"{rate:.2f}"


def group_score_cell(row) -> str:
    """A rule's score in one group with its rank there (a row of groups.csv): '0.512 (3)'."""
    return f"{row.score:.3f} ({row.rank})"


def informative_line(table) -> str:
    """The informativeness headline (`runtime.informativeness`'s overall row) in words."""
    row = next(table.itertuples())
    return (
        f"{row.informative} of {counted(row.instances, 'instance')} are informative (solved "
        "by some rule and not by every rule that can run its problem), on "
        f"{row.informative_problems} of {counted(row.problems, 'problem')}; "
        f"{row.nobody} solved by no rule, {row.everyone} by every rule that can run it."
    )


INFORMATIVE_HEADER = [
    "group",
    "instances",
    "problems",
    "solved by no rule",
    "by every rule that can run it",
    f"by 1 to {runtime.FEW} rules, not all",
    f"by more than {runtime.FEW}, not all",
    "informative",
]


def informative_cells(row) -> list[str]:
    """A row of `runtime.informativeness` as the views' cells."""
    return [
        str(row.group),
        str(row.instances),
        str(row.problems),
        str(row.nobody),
        str(row.everyone),
        str(row.few),
        str(row.rest),
        f"{row.informative} ({counted(row.informative_problems, 'problem')})",
    ]


# What TABLES.md and index.html say in place of a table per problem, where a suite draws
# no figure per problem (`problem_figures = false`: suites of over a hundred problems).
PER_PROBLEM_LEFT_OUT = (
    "One table per problem is not written for a suite that draws no figure per problem "
    "({problems} here): every tuned pair, with its costs at each level and their "
    "intervals, is a row of summary.csv."
)
