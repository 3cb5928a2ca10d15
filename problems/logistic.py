"""L2-regularised logistic regression on synthetic and real (breast cancer) binary data."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from problems import datasets, draws
from problems.base import Problem
from problems.losses import binary_cross_entropy_with_logits


def synthetic_binary_data(n: int, dim: int, seed: int):
    """Features x ~ N(0, I); labels from a random linear rule with 10% of them flipped.

    The draws are those of `problems.draws`, and each label's x w is summed exactly
    (math.fsum of float64 products of float32 numbers, each exact), so the data are the
    same to the last bit on every machine.
    """
    kx, kw, kflip = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = np.asarray(draws.normal(kx, (n, dim)))
    w = np.asarray(draws.normal(kw, (dim,)))
    flip = np.asarray(draws.uniform(kflip, (n,), 0.0, 1.0)) < 0.1
    above = np.array([math.fsum(row) > 0 for row in x.astype(np.float64) * w.astype(np.float64)])
    return jnp.asarray(x), jnp.asarray(above != flip, jnp.float32)


def logistic_loss(params, data, l2):
    """mean BCE(x w + b, y) + l2/2 |w|^2.

    The bias is not penalised (as in scikit-learn): the loss is l2-strongly convex in
    w and its Hessian in b, mean sigmoid'(x w + b), is positive everywhere.
    """
    w, b = params["w"], params["b"]
    x, y = data
    logits = x @ w + b
    return binary_cross_entropy_with_logits(logits, y) + 0.5 * l2 * jnp.sum(w**2)


def logistic_regression(
    n: int = 200, dim: int = 10, l2: float = 1e-2, seed: int = 0, f_star: float = 0.0
) -> Problem:
    """Strongly convex logistic regression; `f_star` is a stored float64 Newton solve."""
    return Problem(
        name=f"logistic_synthetic_{n}x{dim}",
        description=f"L2-regularised logistic regression, {n} synthetic examples, {dim} features",
        tags=frozenset({"convex", "dataset"}),
        dim=dim + 1,
        init=lambda key: {
            "w": 0.1 * draws.normal(key, (dim,)),
            "b": jnp.zeros((), jnp.float32),
        },
        loss=functools.partial(logistic_loss, l2=l2),
        data=functools.cache(lambda: synthetic_binary_data(n, dim, seed)),
        f_star=f_star,
        target=1e-5,
        steps=1000,
    )


def logistic_breast_cancer(l2: float, f_star: float) -> Problem:
    """Logistic regression on the 569 Wisconsin breast-cancer biopsies, 30 features.

    Features standardised. The classes are nearly separable, so the l2 term is what
    keeps the minimiser finite and sets the condition number. `f_star` is a stored
    float64 Newton solve; the tests re-solve it with their own Newton iteration.
    """
    features = 30
    return Problem(
        name="logistic_breast_cancer",
        description=f"L2-regularised logistic regression, breast cancer (569 x 30), l2={l2:g}",
        tags=frozenset({"convex", "dataset"}),
        dim=features + 1,
        init=lambda key: {
            "w": 0.1 * draws.normal(key, (features,)),
            "b": jnp.zeros((), jnp.float32),
        },
        loss=functools.partial(logistic_loss, l2=l2),
        data=lambda: datasets.split("breast_cancer")[0],
        f_star=f_star,
        target=1e-5,
        steps=500,
    )
