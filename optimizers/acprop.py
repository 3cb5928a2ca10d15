"""ACProp: AdaBelief's centred second moment, applied asynchronously (one step late)."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    descend,
    increment,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import (
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)


class AcpropState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second central moment s (of the prediction error g - m)


def acprop(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    weight_decay: float = 0.0,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""ACProp (Zhuang et al., 2021): the step is scaled by the belief of the step before.

    For step t = 1, 2, ... with gradient g_t, m_0 = s_0 = 0 and weight decay wd:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        s_t     = b2 * s_{t-1} + (1 - b2) * (g_t - m_{t-1})^2 + eps_root
        shat    = s_{t-1} / (1 - b2^(t-1)),  and shat = 1 at t = 1
        theta_t = theta_{t-1} - lr_t * (g_t / (sqrt(shat) + eps) + wd * theta_{t-1})

    The numerator is the raw gradient and the denominator uses only what was known
    before g_t arrived (the "asynchronous" update); the prediction error is measured
    against the previous mean m_{t-1}. `mask` selects the leaves that decay. Same
    arguments and defaults as `optax.contrib.acprop`.

    Reference: Zhuang et al., "Momentum Centering and Asynchronous Update for Adaptive
    Gradient Methods", NeurIPS 2021.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return AcpropState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        mu = update_moment(grads, state.mu, b1, 1)
        error = jax.tree.map(lambda g, m: g - m, grads, state.mu)
        nu = jax.tree.map(lambda v: v + eps_root, update_moment(error, state.nu, b2, 2))
        # The step's denominator: the bias-corrected s_{t-1}, or 1 on the first step.
        first = state.count == 0
        correction = 1 - b2 ** jnp.where(first, 1, state.count)
        shat = jax.tree.map(lambda v: jnp.where(first, 1, v / correction.astype(v.dtype)), state.nu)
        direction = jax.tree.map(lambda g, v: g / (jnp.sqrt(v) + eps), grads, shat)
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        new_state = AcpropState(
            count=increment(state.count), mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu)
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper tunes ACProp over Adam's learning rates (1e-3 on CIFAR, 2e-4 for GANs).
    # Its eps (1e-16 by default, as AdaBelief's) sits far below Adam's.
    "acprop": OptimizerSpec(
        acprop,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "eps": Range(1e-16, 1e-6),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1e-3,  # Zhuang et al. 2021, CIFAR
        reference="optax.contrib 0.2.8 acprop",
    ),
}
__all__ = ["AcpropState", "acprop"]
