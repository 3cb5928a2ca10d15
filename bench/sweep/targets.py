"""The targets a lane is judged against (docs/method.md, "f* and the target"): the
problem's own, `Problem.target`, and relative levels, each tau (f(x0) - f*) with f(x0)
the problem's start value (the suite's are `bench.results.schema.LEVELS`); and whether
the run's dtype can resolve a target at all.

Every level is set by the same rule on every problem, none by running a ranked rule.
"""

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from problems import Problem

# f(x0) is the median over the starts of these seeds (a lane of seed s starts at
# init(`start_key(s)`)), in float64, kept to SIGNIFICANT digits so that
# the last bits of another machine's float64 arithmetic do not move a level.
START_SEEDS = range(5)
SIGNIFICANT = 10
# A target finer than this many spacings of the compute dtype's numbers near f* cannot be
# told from rounding: the loss would reach it by rounding down, not by optimising.
RESOLUTION_SPACINGS = 4


def spacing(value: float, dtype) -> float:
    """The distance between the numbers of `dtype` (bfloat16 computes in bfloat16) at
    |value|: eps times the power of two at or below it."""
    value = abs(value)
    if value == 0:
        return 0.0
    return float(jnp.finfo(dtype).eps) * 2.0 ** math.floor(math.log2(value))


def resolves(f_star: float, target: float, dtype) -> bool:
    """Whether losses computed in `dtype` can tell f* + target from f*."""
    return target >= RESOLUTION_SPACINGS * spacing(abs(f_star) + target, dtype)


def resolution_reason(problem: Problem, dtype) -> str | None:
    """Why the losses of `problem`, computed in `dtype`, cannot resolve its own target,
    else None (`resolves`). Nothing is said where f* is not known yet."""
    if problem.f_star is None or resolves(problem.f_star, problem.target, dtype):
        return None
    gap = spacing(abs(problem.f_star) + problem.target, dtype)
    return (
        f"target {problem.target:g} is finer than {jnp.dtype(dtype).name} resolves at "
        f"f* = {problem.f_star:.4g} (spacing {gap:.2g}): success would be rounding"
    )


def start_key(seed) -> jax.Array:
    """The key a lane of `seed` draws its start point x0 from (`Problem.init`); the other
    half of the split keys its minibatches (`lane.lane_program`)."""
    return jax.random.split(jax.random.PRNGKey(seed))[0]


# Problem (by identity, kept alive so that its id stays its own) -> its start value.
_STARTS: dict[int, tuple[Problem, float]] = {}


def start_value(problem: Problem) -> float:
    """f(x0): the median of the problem's loss at the starts of START_SEEDS, in float64,
    on the batch the sweep records the loss on (the evaluation batch where the problem
    has one, else its whole data; each seed's own data where its lanes have their own,
    `Problem.lane_data`). Computed once per problem."""
    if id(problem) not in _STARTS:
        _STARTS[id(problem)] = problem, _start_value(problem)
    return _STARTS[id(problem)][1]


def _start_value(problem: Problem) -> float:
    with jax.enable_x64(True):

        def cast(tree):
            def one(x):
                x = jnp.asarray(x)
                return x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x

            return jax.tree.map(one, tree)

        loss, init = jax.jit(problem.loss), jax.jit(problem.init)
        values, own = [], problem.lane_data
        for seed in START_SEEDS:  # each seed's own data where its lanes have their own
            data = cast(problem.data() if own is None else own(seed))
            batch = problem.eval_batch(data) if problem.eval_batch is not None else data
            values.append(float(loss(cast(init(start_key(seed))), batch)))
    return float(f"{np.median(values):.{SIGNIFICANT}g}")


def level_targets(f_star: float, f0: float, taus: Mapping[str, float], dtype) -> dict[str, float]:
    """Each level's target f - f* <= tau (f0 - f*), by the name `taus` gives its tau; NaN
    for a level `dtype` cannot resolve (or a start at f*)."""
    targets = {name: tau * (f0 - f_star) for name, tau in taus.items()}
    return {
        name: target if target > 0 and resolves(f_star, target, dtype) else math.nan
        for name, target in targets.items()
    }


def problem_levels(problem: Problem, taus: Mapping[str, float], dtype) -> dict[str, float] | None:
    """`level_targets` of `problem` from its `start_value`; None where f* is not known yet
    (a suite resolves it after the run, from the run's own start)."""
    if problem.f_star is None:
        return None
    return level_targets(problem.f_star, start_value(problem), taus, dtype)


def threshold(f_star: float | None, target: float, dtype) -> float:
    """The largest loss of `dtype` at `target`: for a loss x of that dtype, x <= this
    exactly when x - f_star <= target in float64 (`records.first_reached`); -inf where
    f_star is not known (None: a suite resolves it after the run) or the target is NaN."""
    if f_star is None or math.isnan(target):  # nothing is at a target not known
        return -math.inf
    bound = np.float64(f_star) + np.float64(target)
    rounded = np.asarray(bound, dtype)
    if np.float64(rounded) > bound:
        rounded = np.nextafter(rounded, np.asarray(-np.inf, dtype))
    return float(rounded)
