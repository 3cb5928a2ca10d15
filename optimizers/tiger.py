"""Tiger: the sign of one gradient momentum."""

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
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import MOMENTUM, OptimizerSpec, Range, log_grid


class TigerState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum m


def tiger(
    learning_rate: ScalarOrSchedule,
    beta: float = 0.965,
    weight_decay: ScalarOrSchedule = 0.01,
    mask: Any = None,
    *,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""Tiger (Su, 2023): sign descent on an exponential moving average of the gradient.

    For step t with gradient g_t and parameters theta_{t-1}:

        m_t     = beta * m_{t-1} + (1 - beta) * g_t
        theta_t = theta_{t-1} - lr_t * (sign(m_t) + wd_t * theta_{t-1})

    Lion with b1 = b2 = beta, one buffer instead of an interpolation. Options, as in
    the reference implementation (pytorch-optimizer's `Tiger`):

    - weight_decouple=False: the decay is coupled, added to the gradient before the
      momentum (g_t <- g_t + wd_t * theta_{t-1}), and the step is lr_t * sign(m_t);
    - fixed_decay=True (decoupled only): theta_t = theta_{t-1} - lr_t * sign(m_t)
      - wd_t * theta_{t-1}, a decay not scaled by the learning rate.

    `mask` (a tree of bools or a function of the params) selects the leaves that decay.

    Reference: Su, "Tiger: A Tight-fisted Optimizer", https://github.com/bojone/tiger (2023).
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("beta", beta)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return TigerState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params))

    def update(grads, state, params=None, **extra):
        check_state(state, TigerState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        if not weight_decouple:
            grads = with_weight_decay(grads, params, weight_decay, state.count, mask)
        mu = update_moment(grads, state.mu, beta, 1)
        direction = jax.tree.map(jnp.sign, mu)
        if weight_decouple and not fixed_decay:
            direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        updates = descend(learning_rate, state.count, direction)
        if weight_decouple and fixed_decay:
            zeros = jax.tree.map(jnp.zeros_like, updates)
            decay = with_weight_decay(zeros, params, weight_decay, state.count, mask)
            updates = jax.tree.map(lambda u, d: u - d, updates, decay)
        new_state = TigerState(count=increment(state.count), mu=cast_like(mu, state.mu))
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # Sign descent like Lion: Lion's grid and decay range.
    "tiger": OptimizerSpec(
        tiger,
        log_grid(1e-5, 1e-1),
        search_space={"beta": MOMENTUM, "weight_decay": Range(1e-4, 1.0)},
        default_learning_rate=1e-3,  # pytorch-optimizer's Tiger
        reference="pytorch-optimizer 4.1.0 Tiger",
    ),
}
__all__ = ["TigerState", "tiger"]
