"""Fromage: Frobenius matched gradient descent."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    require_params,
    trust_ratio_scale,
    value_at,
)
from optimizers.registry import LR_GRID, OptimizerSpec


class FromageState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules


def fromage(learning_rate: ScalarOrSchedule, min_norm: float = 1e-6) -> Optimizer:
    r"""Fromage (Bernstein et al., 2020): a relative step of size lr per layer, then a shrink.

    For step t with gradient g_t, per leaf, norms floored at min_norm:

        c_t     = 1 / sqrt(1 + lr_t^2)
        theta_t = c_t * (theta_{t-1} - lr_t * ||theta_{t-1}|| / ||g_t|| * g_t)

    computed, as in `optax.fromage`, as theta_{t-1} - lr_t c_t r_t g_t + (c_t - 1) theta_{t-1}.
    Same arguments and defaults as `optax.fromage`.

    Reference: Bernstein, Vahdat, Yue & Liu, "On the distance between two neural networks
    and the stability of learning", NeurIPS 2020.
    """
    check_given("learning_rate", learning_rate)
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("min_norm", min_norm)

    def shrink(count):
        return 1 / (1 + value_at(learning_rate, count) ** 2) ** 0.5

    if callable(learning_rate):
        scaled_rate = lambda count: shrink(count) * learning_rate(count)  # noqa: E731
    else:
        scaled_rate = learning_rate * shrink(0)

    def init(params):
        del params
        return FromageState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, **extra):
        check_state(state, FromageState)
        del extra
        require_params("fromage", params)
        check_same_tree(grads, params, "grads", "params")
        direction = jax.tree.map(lambda g, p: trust_ratio_scale(g, p, min_norm), grads, params)
        step = descend(scaled_rate, state.count, direction)
        shrink_minus_one = shrink(state.count) - 1
        updates = jax.tree.map(lambda s, p: s + shrink_minus_one * p, step, params)
        return updates, FromageState(count=increment(state.count))

    return Optimizer(init, update)


REGISTRY = {
    "fromage": OptimizerSpec(
        fromage,
        LR_GRID,
        optax_name="fromage",
        default_learning_rate=1e-2,  # Bernstein et al. 2020
    ),
}
__all__ = ["FromageState", "fromage"]
