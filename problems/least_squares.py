"""Least-squares linear regression on the diabetes data set (closed-form optimum)."""

import jax.numpy as jnp

from problems import datasets, draws
from problems.base import Problem
from problems.losses import mse


def linear_regression_loss(params, data):
    """mean((x w + b - y)^2) over the examples of `data`."""
    x, y = data
    return mse(x @ params["w"] + params["b"], y)


def least_squares(f_star: float) -> Problem:
    """Ordinary least squares on the 442 diabetes patients (Efron et al. 2004), 10 features.

    Features and the target are standardised, so f* = 1 - R^2 of the best linear fit.
    `f_star` is the float64 closed-form solution of the normal equations (lstsq on
    [x, 1]), stored; the tests re-solve it. Convex, not regularised: the condition
    number is the data's own (correlated blood-serum features).
    """
    features = 10
    return Problem(
        name="least_squares_diabetes",
        description="least-squares linear regression, diabetes (442 x 10), standardised",
        tags=frozenset({"convex", "dataset"}),
        dim=features + 1,
        init=lambda key: {
            "w": 0.1 * draws.normal(key, (features,)),
            "b": jnp.zeros((), jnp.float32),
        },
        loss=linear_regression_loss,
        data=lambda: datasets.split("diabetes", standardise_labels=True)[0],
        f_star=f_star,
        target=1e-5,
        steps=500,
    )
