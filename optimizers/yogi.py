"""Yogi: Adam with an additive, sign-controlled second-moment update."""

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
    check_unit_interval,
    descend,
    full_like,
    increment,
    update_moment,
)
from optimizers.registry import LR_GRID, MOMENTUM, SECOND_MOMENT, OptimizerSpec, Range

# optax.yogi starts both moments at this value (scale_by_yogi's default).
INITIAL_ACCUMULATOR_VALUE = 1e-6


class YogiState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
) -> Optimizer:
    r"""Yogi (Zaheer et al., 2018).

    For step t = 1, 2, ... with gradient g_t, both moments starting at 1e-6:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = v_{t-1} - (1 - b2) * sign(v_{t-1} - |g_t|^2) * |g_t|^2
        mhat_t  = m_t / (1 - b1^t),  vhat_t = v_t / (1 - b2^t)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(vhat_t) + eps)

    v_t moves towards |g_t|^2 by at most (1 - b2) |g_t|^2 per step, instead of Adam's
    multiplicative decay. Same arguments and defaults as `optax.yogi`, including its
    bias corrections of moments that start at 1e-6 rather than 0.

    Reference: Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)

    def init(params):
        # A fresh tree per moment: state buffers never alias, so they can be donated.
        mu, nu = (full_like(params, INITIAL_ACCUMULATOR_VALUE) for _ in range(2))
        return YogiState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

    def update(grads, state, params=None, **extra):
        check_state(state, YogiState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = jax.tree.map(
            lambda g, v: v - (1 - b2) * jnp.sign(v - abs_sq(g)) * abs_sq(g), grads, state.nu
        )
        correction1, correction2 = 1 - b1**t, 1 - b2**t  # counter's float type, cast per leaf
        mhat = jax.tree.map(lambda m: m / correction1.astype(m.dtype), mu)
        vhat = jax.tree.map(lambda v: v / correction2.astype(v.dtype), nu)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mhat, vhat)
        new_state = YogiState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper's eps (1e-3) is far above Adam's: the range is centred on it.
    "yogi": OptimizerSpec(
        yogi,
        LR_GRID,
        optax_name="yogi",
        search_space={"b1": MOMENTUM, "b2": SECOND_MOMENT, "eps": Range(1e-6, 1e-1)},
        default_learning_rate=1e-2,  # Zaheer et al. 2018
    ),
}
__all__ = ["YogiState", "yogi"]
