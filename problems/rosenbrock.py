"""The Rosenbrock function, the classic curved narrow valley."""

import jax.numpy as jnp
import numpy as np

from problems import draws
from problems.base import Problem


def rosenbrock_value(x):
    """sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; minimum 0 at x = (1, ..., 1)."""
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock(dim: int = 2) -> Problem:
    """N-dimensional Rosenbrock (Rosenbrock 1960), x0 uniform in [-2, 2]^N."""
    return Problem(
        name=f"rosenbrock_{dim}d",
        description=f"Rosenbrock valley, {dim}-D, minimum 0 at (1, ..., 1)",
        tags=frozenset({"nonconvex"}),
        dim=dim,
        init=lambda key: draws.uniform(key, (dim,), -2.0, 2.0),
        loss=lambda x, data: rosenbrock_value(x),
        f_star=0.0,
        x_star=np.ones(dim),
        target=1e-4,
        steps=2000,
    )
