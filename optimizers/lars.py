"""LARS: layer-wise adaptive rate scaling with momentum."""

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
    not_supported,
    trust_ratio_scale,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range, log_grid


class LarsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    trace: Any  # momentum buffer of learning-rate-scaled steps


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: Any = True,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> Optimizer:
    r"""LARS (You et al., 2017): per-layer trust ratio, then heavy-ball momentum.

    For step t with gradient g_t (per leaf for the norms):

        u_t     = g_t + wd_t * theta_{t-1}
        s_t     = -lr_t * eta * ||theta_{t-1}|| / (||u_t|| + eps) * u_t   (eta = trust_coefficient)
        m_t     = s_t + mu * m_{t-1}
        theta_t = theta_{t-1} + m_t               (nesterov: + s_t + mu * m_t)

    As in `optax.lars` the learning rate scales the step before the momentum buffer,
    so the buffer holds parameter-space steps. The trust ratio is 1 where a norm is 0.
    Same arguments and defaults as `optax.lars`; `weight_decay_mask` limits the decay to
    some leaves, while only the all-leaves `trust_ratio_mask` (True) is supported.

    Reference: You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks",
    arXiv:1708.03888, 2017.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("trust_coefficient", trust_coefficient)
    check_nonnegative("eps", eps)
    check_unit_interval("momentum", momentum)
    not_supported("trust_ratio_mask", trust_ratio_mask, True)

    def init(params):
        return LarsState(count=jnp.zeros([], jnp.int32), trace=zeros_like(params))

    def update(grads, state, params=None, **extra):
        check_state(state, LarsState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction = with_weight_decay(grads, params, weight_decay, state.count, weight_decay_mask)
        direction = jax.tree.map(
            lambda u, p: trust_ratio_scale(u, p, trust_coefficient=trust_coefficient, eps=eps),
            direction,
            params,
        )
        step = descend(learning_rate, state.count, direction)
        trace = jax.tree.map(lambda s, m: s + momentum * m, step, state.trace)
        updates = jax.tree.map(lambda s, m: s + momentum * m, step, trace) if nesterov else trace
        return updates, LarsState(count=increment(state.count), trace=cast_like(trace, state.trace))

    return Optimizer(init, update)


REGISTRY = {
    "lars": OptimizerSpec(
        lars,
        log_grid(1e-2, 1e2),
        optax_name="lars",
        search_space={
            "weight_decay": WEIGHT_DECAY_OR_OFF,
            "trust_coefficient": Range(1e-4, 1e-1),
            "momentum": MOMENTUM,
        },
        default_learning_rate=0.3,  # SimCLR (Chen et al. 2020): 0.3 x batch / 256
    ),
}
__all__ = ["LarsState", "lars"]
