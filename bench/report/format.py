"""Formatting shared by the views: numbers, costs, intervals, shares, the ranking's rows and
groups, head-to-head cells, the robustness headline and file names."""

import math
from typing import Any

from bench.analysis.claims import robust_top


def number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def cost_text(x: float, axis: str) -> str:
    """A median cost to target: 'never' when unreached, 'n/a' when not recorded."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never"
    return f"{x:.3g}" if axis == "seconds" else f"{x:g}"


def interval(r, name: str, show) -> str:
    """A summary median with its bootstrap interval: 'median [low, high]'."""
    median, low, high = (getattr(r, f"{k}_{name}") for k in ("median", "ci_low", "ci_high"))
    if math.isnan(median) or (math.isinf(median) and low == median):  # not recorded; never
        return show(median)
    return f"{show(median)} [{show(low)}, {show(high)}]"


def share(x: float) -> str:
    return f"{100 * x:.0f}%"


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
