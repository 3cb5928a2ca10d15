"""Adadelta: step sizes from running averages of squared gradients and squared steps."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    cast_like,
    check_nonnegative,
    check_state,
    check_unit_interval,
    descend,
    increment,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range, log_grid


class AdadeltaState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds the schedules
    e_g: Any  # E[g^2], running average of squared gradients
    e_x: Any  # E[dx^2], running average of squared (unscaled) steps


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adadelta (Zeiler, 2012), with an optional learning rate and L2 weight decay.

    For step t with gradient g_t and weight decay wd_t:

        g_t      = g_t + wd_t * theta_{t-1}            (on the leaves weight_decay_mask selects)
        E[g^2]_t = rho * E[g^2]_{t-1} + (1 - rho) * |g_t|^2
        dx_t     = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t
        E[dx^2]_t = rho * E[dx^2]_{t-1} + (1 - rho) * |dx_t|^2
        theta_t  = theta_{t-1} - lr_t * dx_t

    Same arguments and defaults as `optax.adadelta`, with one deliberate difference:
    `learning_rate=None` (the default) means lr = 1, Zeiler's rule without a learning
    rate, whereas optax then drops the final sign flip and steps uphill. For complex
    params the averages are of |g|^2 and |dx|^2, real, where optax's square g and dx.

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("rho", rho)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    lr = 1.0 if learning_rate is None else learning_rate

    def init(params):
        return AdadeltaState(
            count=jnp.zeros([], jnp.int32), e_g=zeros_like(params), e_x=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AdadeltaState)
        del extra
        grads = with_weight_decay(grads, params, weight_decay, state.count, weight_decay_mask)
        e_g = update_moment(grads, state.e_g, rho, 2)
        dx = jax.tree.map(
            lambda g, a, b: (jnp.sqrt(b + eps) / jnp.sqrt(a + eps)) * g, grads, e_g, state.e_x
        )
        e_x = jax.tree.map(lambda d, b: (1 - rho) * abs_sq(d) + rho * b, dx, state.e_x)
        new_state = AdadeltaState(
            count=increment(state.count),
            e_g=cast_like(e_g, state.e_g),
            e_x=cast_like(e_x, state.e_x),
        )
        return descend(lr, state.count, dx), new_state

    return Optimizer(init, update)


REGISTRY = {
    # eps sets the first steps' size (sqrt(eps) / sqrt(eps + g^2)): wider than Adam's.
    "adadelta": OptimizerSpec(
        adadelta,
        log_grid(1e-2, 100.0),
        optax_name="adadelta",
        search_space={
            "rho": MOMENTUM,
            "eps": Range(1e-8, 1e-2),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1.0,  # PyTorch
    ),
}
__all__ = ["AdadeltaState", "adadelta"]
