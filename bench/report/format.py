"""Formatting shared by the views: numbers, costs, intervals, shares and file names."""

import math


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


def versus_above(r) -> str:
    """'tie' or 'differs' against the row above, with the Holm-adjusted p-value."""
    if math.isnan(r.p_above):
        return ""
    return f"{'tie' if r.tie_above else 'differs'} (p = {number(r.p_above)})"


def counted(count: int, noun: str) -> str:
    """'1 problem', '2 problems'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def slug(problem: str) -> str:
    """A problem's name as a file name: characters other than letters, digits, -, _ and .
    become _."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in problem)
