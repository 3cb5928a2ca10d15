"""The Rosenbrock function, the classic curved narrow valley."""

import jax.numpy as jnp
import numpy as np

from problems.base import Problem
from problems.functions import function_problem


def rosenbrock_value(x):
    """sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; minimum 0 at x = (1, ..., 1)."""
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock(dim: int = 2, seed: int = 1) -> Problem:
    """N-dimensional Rosenbrock (Rosenbrock 1960), raw minimum at (1, ..., 1), x0 uniform in
    [-2, 2]^N; instance `seed` moves the minimum (`problems.functions.instance`)."""
    return function_problem(
        f"rosenbrock_{dim}d", f"Rosenbrock valley, {dim}-D, minimum 0", rosenbrock_value, dim,
        (-2.0, 2.0), 0.0, np.ones(dim), 1e-4, 2000, seed,
    )  # fmt: skip
