"""Checks of `run_sweep`'s arguments, made before anything is traced or compiled.

They are the checks the command line makes, for callers of the Python API: each failure
is a ValueError naming the argument, never an error from inside JAX.
"""

import math
import warnings
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from optimizers import OptimizerSpec
from problems import Problem

SEED_LIMIT = 2**32  # seeds become uint32 PRNG keys


def skip_reason(problem: Problem, optimizer: OptimizerSpec) -> str | None:
    """Why `optimizer` cannot run on `problem` by its declared capabilities, else None."""
    leaves = jax.tree.leaves(jax.eval_shape(problem.init, jax.random.PRNGKey(0)))
    max_rank = max(len(leaf.shape) for leaf in leaves)
    return optimizer.skip_reason(problem.stochastic, problem.dim, max_rank)


def check_sweep(
    problem: Problem,
    name: str,
    spec: OptimizerSpec,
    trials: Sequence[Mapping[str, float]],
    fixed: Mapping,
    seeds: Sequence,
) -> None:
    """Raises ValueError for a sweep that cannot run as asked.

    trials: the settings swept, each a dict of the same hyperparameters (learning_rate
    first); fixed: the others. Every trial is passed to the optimizer's factory once with
    concrete values, so the factory's own checks (a beta outside [0, 1), ...) name the
    argument.
    """
    bad = [t["learning_rate"] for t in trials if not (0 < float(t["learning_rate"]) < math.inf)]
    if bad:
        raise ValueError(f"learning_rates must be positive and finite, got {bad}")
    bad = [
        s
        for s in seeds
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or not 0 <= s < SEED_LIMIT
    ]
    if bad:
        raise ValueError(f"seeds must be integers in [0, 2**32), got {bad}")
    shapes = jax.eval_shape(problem.init, jax.random.PRNGKey(0))
    size = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))
    if size != problem.dim:
        raise ValueError(
            f"problem {problem.name} declares dim={problem.dim}, but its init returns "
            f"{size} parameters"
        )
    reason = skip_reason(problem, spec)
    if reason is not None:
        raise ValueError(f"optimizer {name} cannot run on problem {problem.name}: {reason}")
    for setting in trials:
        spec.factory(**setting, **fixed)


def warn_below_f_star(problem: Problem, losses: np.ndarray) -> None:
    """Warns when a loss lies below f_star by more than the target: f_star is then too high.

    Suboptimality and steps-to-target are measured from f_star; above the true minimum
    it makes lanes succeed at step 0. Rounding keeps losses within 1% of the target of
    a correct f_star on the registered problems. Nothing is said where f_star is not
    known (None).
    """
    if problem.f_star is None:
        return
    finite = losses[np.isfinite(losses)]
    lowest = finite.min(initial=np.inf)
    if lowest < problem.f_star - problem.target:
        warnings.warn(
            f"problem {problem.name}: the loss reaches {lowest:.6g}, below f_star="
            f"{problem.f_star:.6g} by more than the target {problem.target:g}; f_star is "
            "too high, so suboptimality and steps-to-target are wrong",
            stacklevel=3,
        )
