"""Polyak's heavy-ball method in its textbook form, the learning rate inside the velocity."""

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


class HeavyBallState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds learning-rate schedules
    velocity: Any  # v, in accumulator_dtype when given


def heavy_ball(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    accumulator_dtype: Any | None = None,
) -> Optimizer:
    r"""The heavy-ball method (Polyak 1964) as textbooks write it.

    For step t with learning rate lr_t and gradient g_t:

        v_t     = momentum * v_{t-1} + lr_t * g_t      (v_0 = 0)
        theta_t = theta_{t-1} - v_t

    At a constant learning rate this is `sgd(learning_rate, momentum)`, which keeps
    the learning rate outside the buffer (m_t = g_t + momentum * m_{t-1}, theta_t =
    theta_{t-1} - lr_t * m_t). Under a schedule the two differ: here a change of
    learning rate applies to new gradients only, there to the whole accumulated
    momentum at once. optax has no such rule.

    Reference: Polyak, "Some methods of speeding up the convergence of iteration
    methods", USSR Computational Mathematics and Mathematical Physics, 1964.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)

    def init(params):
        return HeavyBallState(
            count=jnp.zeros([], jnp.int32), velocity=zeros_like(params, accumulator_dtype)
        )

    def update(grads, state, params=None, **extra):
        check_state(state, HeavyBallState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        step = descend(learning_rate, state.count, grads)  # -lr_t * g_t
        velocity = jax.tree.map(lambda v, s: momentum * v - s, state.velocity, step)
        new_state = HeavyBallState(
            count=increment(state.count), velocity=cast_like(velocity, state.velocity)
        )
        return jax.tree.map(jnp.negative, velocity), new_state

    return Optimizer(init, update)


REGISTRY = {
    "heavy_ball": OptimizerSpec(
        heavy_ball,
        LR_GRID,
        {"momentum": 0.9},
        search_space={"momentum": MOMENTUM},
        default_learning_rate=1e-2,  # Keras's SGD
        reference="sgd with momentum at a constant learning rate",
    ),
}
__all__ = ["HeavyBallState", "heavy_ball"]
