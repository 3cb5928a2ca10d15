"""L2-regularised multinomial logistic (softmax) regression on the digits data set."""

import functools

import jax.numpy as jnp

from problems import datasets, draws
from problems.base import Problem
from problems.losses import softmax_cross_entropy_with_integer_labels

FEATURES, CLASSES = 64, 10


def softmax_regression_loss(params, data, l2):
    """mean CE(softmax(x W + b), y) + l2/2 (|W|^2 + |b|^2).

    The bias is penalised too: softmax is unchanged by b -> b + c 1, so without it
    the minimiser would not be unique; with it the loss is l2-strongly convex.
    """
    x, y = data
    w, b = params["w"], params["b"]
    penalty = 0.5 * l2 * (jnp.sum(w**2) + jnp.sum(b**2))
    return softmax_cross_entropy_with_integer_labels(x @ w + b, y) + penalty


def softmax_regression(n_train: int, l2: float, f_star: float) -> Problem:
    """Softmax regression on the first `n_train` examples of the fixed digits permutation.

    8 x 8 handwritten digits (UCI), pixels standardised. `f_star` is a stored float64
    Newton solve; the tests re-solve it with their own Newton iteration.
    """
    return Problem(
        name="softmax_digits",
        description=f"L2-regularised softmax regression, digits ({n_train} x 64, 10 classes)",
        tags=frozenset({"convex", "dataset"}),
        dim=(FEATURES + 1) * CLASSES,
        init=lambda key: {
            "w": 0.01 * draws.normal(key, (FEATURES, CLASSES)),
            "b": jnp.zeros((CLASSES,), jnp.float32),
        },
        loss=functools.partial(softmax_regression_loss, l2=l2),
        data=lambda: datasets.split("digits", n_train=n_train)[0],
        f_star=f_star,
        target=1e-4,
        steps=200,
    )
