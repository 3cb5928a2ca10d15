"""Lion: evolved sign momentum."""

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
from optimizers.registry import MOMENTUM, SECOND_MOMENT, OptimizerSpec, Range, log_grid


class LionState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum m, in mu_dtype when given


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> Optimizer:
    r"""Lion (Chen et al., 2023): the sign of an interpolated momentum, with decoupled decay.

    For step t with gradient g_t and parameters theta_{t-1}:

        c_t     = sign((1 - b1) * g_t + b1 * m_{t-1})
        m_t     = (1 - b2) * g_t + b2 * m_{t-1}
        theta_t = theta_{t-1} - lr_t * (c_t + wd_t * theta_{t-1})

    Same arguments and defaults as `optax.lion` (weight decay 1e-3, applied to all
    leaves unless `mask`, a tree of bools or a function of the params, says otherwise).

    Reference: Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return LionState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params, mu_dtype))

    def update(grads, state, params=None, **extra):
        check_state(state, LionState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        sign = jax.tree.map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), grads, state.mu)
        mu = update_moment(grads, state.mu, b2, 1)
        direction = with_weight_decay(sign, params, weight_decay, state.count, mask)
        new_state = LionState(count=increment(state.count), mu=cast_like(mu, state.mu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # Lion's decay is 3-10x AdamW's (the paper): its range reaches 1.
    "lion": OptimizerSpec(
        lion,
        log_grid(1e-5, 1e-1),
        optax_name="lion",
        search_space={"b1": MOMENTUM, "b2": SECOND_MOMENT, "weight_decay": Range(1e-4, 1.0)},
        default_learning_rate=1e-4,  # Chen et al. 2023
    ),
}
__all__ = ["LionState", "lion"]
