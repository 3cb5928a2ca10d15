"""Sign-based gradient descent: signSGD and Signum (signSGD with momentum)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    descend,
    increment,
    zeros_like,
)
from optimizers.registry import LR_GRID, MOMENTUM, OptimizerSpec


class SignSgdState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds learning-rate schedules


class SignumState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds learning-rate schedules
    mu: Any  # momentum m, in accumulator_dtype when given


def sign_sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    r"""signSGD: every coordinate moves by the learning rate against its gradient's sign.

        theta_t = theta_{t-1} - lr_t * sign(g_t)

    (sign(0) = 0). Same arguments as `optax.sign_sgd`.

    Reference: Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex
    Problems", ICML 2018.
    """
    check_nonnegative("learning_rate", learning_rate)

    def init(params):
        del params
        return SignSgdState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, **extra):
        check_state(state, SignSgdState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction = jax.tree.map(jnp.sign, grads)
        return descend(learning_rate, state.count, direction), SignSgdState(increment(state.count))

    return Optimizer(init, update)


def signum(
    learning_rate: ScalarOrSchedule,
    beta: float = 0.9,
    accumulator_dtype: Any | None = None,
) -> Optimizer:
    r"""Signum: signSGD applied to an exponential moving average of the gradients.

        m_t     = beta * m_{t-1} + (1 - beta) * g_t      (m_0 = 0, not debiased)
        theta_t = theta_{t-1} - lr_t * sign(m_t)

    Same arguments and defaults as `optax.signum`.

    Reference: Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex
    Problems", ICML 2018.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("beta", beta)

    def init(params):
        return SignumState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params, accumulator_dtype))

    def update(grads, state, params=None, **extra):
        check_state(state, SignumState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        mu = jax.tree.map(lambda g, m: (1 - beta) * g + beta * m, grads, state.mu)
        direction = jax.tree.map(jnp.sign, mu)
        new_state = SignumState(count=increment(state.count), mu=cast_like(mu, state.mu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "sign_sgd": OptimizerSpec(
        sign_sgd,
        LR_GRID,
        optax_name="sign_sgd",
        default_learning_rate=1e-2,  # MXNet's Signum, whose momentum=0 is signSGD
    ),
    "signum": OptimizerSpec(
        signum,
        LR_GRID,
        optax_name="signum",
        search_space={"beta": MOMENTUM},
        default_learning_rate=1e-2,  # MXNet
    ),
}
__all__ = ["SignSgdState", "SignumState", "sign_sgd", "signum"]
