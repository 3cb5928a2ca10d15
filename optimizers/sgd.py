"""Stochastic gradient descent with optional heavy-ball or Nesterov momentum."""

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


class SgdState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds learning-rate schedules
    trace: Any  # momentum buffer, () without momentum


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any | None = None,
) -> Optimizer:
    r"""Gradient descent, optionally with momentum (Polyak 1964) or Nesterov momentum.

    With momentum mu, for step t with learning rate lr_t and gradient g_t:

        m_t      = g_t + mu * m_{t-1}                (m_0 = 0)
        d_t      = m_t               (heavy ball)
        d_t      = g_t + mu * m_t    (nesterov=True, Sutskever et al. 2013)
        theta_t  = theta_{t-1} - lr_t * d_t

    Without momentum (`momentum=None`) d_t = g_t. Same arguments and defaults as
    `optax.sgd`.

    References: Robbins & Monro, "A stochastic approximation method", 1951;
    Polyak, "Some methods of speeding up the convergence of iteration methods", 1964;
    Sutskever et al., "On the importance of initialization and momentum in deep learning", 2013.
    """
    check_nonnegative("learning_rate", learning_rate)
    if momentum is not None:
        check_unit_interval("momentum", momentum)

    def init(params):
        trace = zeros_like(params, accumulator_dtype) if momentum is not None else ()
        return SgdState(count=jnp.zeros([], jnp.int32), trace=trace)

    def update(grads, state, params=None, **extra):
        check_state(state, SgdState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        if momentum is None:
            direction, trace = grads, ()
        else:
            trace = jax.tree.map(lambda g, m: g + momentum * m, grads, state.trace)
            direction = (
                jax.tree.map(lambda g, m: g + momentum * m, grads, trace) if nesterov else trace
            )
            trace = cast_like(trace, state.trace)
        return descend(learning_rate, state.count, direction), SgdState(
            count=increment(state.count), trace=trace
        )

    return Optimizer(init, update)


REGISTRY = {
    "sgd": OptimizerSpec(
        sgd,
        LR_GRID,
        optax_name="sgd",
        default_learning_rate=1e-2,  # Keras
    ),
    "momentum": OptimizerSpec(
        sgd,
        LR_GRID,
        {"momentum": 0.9},
        optax_name="sgd",
        search_space={"momentum": MOMENTUM},
        default_learning_rate=1e-2,  # Keras's SGD
    ),
    "nesterov": OptimizerSpec(
        sgd,
        LR_GRID,
        {"momentum": 0.9, "nesterov": True},
        optax_name="sgd",
        search_space={"momentum": MOMENTUM},
        default_learning_rate=1e-2,  # Keras's SGD
    ),
}
__all__ = ["SgdState", "sgd"]
