"""Adagrad: per-coordinate step sizes from the running sum of squared gradients."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    full_like,
    increment,
)
from optimizers.registry import EPS, OptimizerSpec, Range, log_grid


class AdagradState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds learning-rate schedules
    sum_of_squares: Any  # G, the running sum of squared gradients


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> Optimizer:
    r"""Adagrad (Duchi, Hazan & Singer, 2011), diagonal version.

    For step t with gradient g_t:

        G_t     = G_{t-1} + |g_t|^2              (G_0 = initial_accumulator_value)
        theta_t = theta_{t-1} - lr_t * g_t / sqrt(G_t + eps)    (0 where G_t = 0)

    eps sits inside the square root, as in `optax.adagrad`, whose arguments and
    defaults this factory shares.

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 2011.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("initial_accumulator_value", initial_accumulator_value)
    check_nonnegative("eps", eps)

    def init(params):
        return AdagradState(
            count=jnp.zeros([], jnp.int32),
            sum_of_squares=full_like(params, initial_accumulator_value),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AdagradState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        G = jax.tree.map(lambda g, s: abs_sq(g) + s, grads, state.sum_of_squares)
        direction = jax.tree.map(
            lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, grads, G
        )
        new_state = AdagradState(
            count=increment(state.count), sum_of_squares=cast_like(G, state.sum_of_squares)
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "adagrad": OptimizerSpec(
        adagrad,
        log_grid(1e-3, 10.0),
        optax_name="adagrad",
        search_space={"initial_accumulator_value": Range(1e-3, 1.0), "eps": EPS},
        default_learning_rate=1e-2,  # PyTorch
    ),
}
__all__ = ["AdagradState", "adagrad"]
