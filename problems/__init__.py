"""Test problems: pure-function losses with known optima, registered in `PROBLEMS`."""

from problems.base import Problem
from problems.logistic import logistic_regression
from problems.quadratic import quadratic
from problems.rosenbrock import rosenbrock

PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        quadratic(dim=20, condition=1e3),
        rosenbrock(dim=2),
        logistic_regression(n=200, dim=10, l2=1e-2, f_star=0.41773311533815294),
    )
}

__all__ = ["PROBLEMS", "Problem"]
