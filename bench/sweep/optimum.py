"""The reference value f_L of a problem whose f* the run resolves (Moré and Wild's f_L).

On a fixed-start problem (CUTEst's) every optimizer's tuning sweep runs before anything
is measured against f*. Then `lowest_value` is the lowest loss any lane of any optimizer
reached at a record point, over the lanes that did not diverge; `resolve` makes it f_L
where f* is not known (`best_found`), and checks a known f* against it:

- *below*: an optimizer went below the known f* by more than rounding (ROUNDING_ULPS
  ulps of the run's dtype at the largest of f(x0), f* and the value found: the loss's
  rounding error scales with its terms, which f(x0) bounds better than a small f*): the
  known value is too high (a rounded-up or wrong value), and f_L is the lowest value
  found, as Moré and Wild take it;
- *unreached*: the lowest value found lies above f* by more than FACTOR - 1 times |f*|
  (for a positive f*, no optimizer came within a factor FACTOR of it) and by more than
  the ranking's target tau (f(x0) - f*): the known value may be too low, and is kept.

Either way the tables say so, and a value found wrong goes into the reviewed list
(`problems/data/cutest_f_star.toml`) with its reason.
"""

import math
from collections.abc import Iterable

import numpy as np

from bench.sweep.records import diverged
from bench.sweep.runner import SweepResult

ROUNDING_ULPS = 16
FACTOR = 10.0


def lowest_value(results: Iterable[SweepResult]) -> float:
    """The lowest finite loss of every lane that did not diverge, over the record points;
    NaN when every lane diverged."""
    lowest = math.inf
    for result in results:
        kept = result.losses[~diverged(result.losses)]
        finite = kept[np.isfinite(kept)]
        lowest = min(lowest, float(finite.min(initial=math.inf)))
    return lowest if math.isfinite(lowest) else math.nan


def resolve(
    f_star: float | None, lowest: float, f0: float, tau: float, dtype: str
) -> tuple[float, str, str]:
    """(f_L, its source "known" or "best_found", the check's finding: "" when none).

    f_star: the problem's known value, None when there is none; lowest: `lowest_value`;
    f0: the loss at the start point; tau: the ranking target's; dtype: the run's. Where
    every lane diverged (lowest is NaN) and f* is not known, f_L is f0.
    """
    if math.isnan(lowest):
        if f_star is None:
            return f0, "best_found", "every lane diverged: f_L is f(x0)"
        return f_star, "known", "every lane diverged"
    if f_star is None:
        return lowest, "best_found", ""
    scale = max(abs(f_star), abs(lowest), abs(f0))
    rounding = ROUNDING_ULPS * float(np.finfo(dtype).eps) * scale
    if lowest < f_star - rounding:
        return (
            lowest,
            "best_found",
            f"below: optimizers reached {lowest:.10g}, under the known f* = {f_star:.10g} "
            "by more than rounding; f_L is the lowest value found",
        )
    gap = lowest - f_star
    if gap > (FACTOR - 1) * abs(f_star) and gap > tau * (f0 - f_star):
        return (
            f_star,
            "known",
            f"unreached: the lowest value found, {lowest:.10g}, is not within a factor "
            f"{FACTOR:g} of the known f* = {f_star:.10g} nor at the target",
        )
    return f_star, "known", ""
