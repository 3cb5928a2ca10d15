"""AdaBelief: Adam with the variance of the gradient around its moving average."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    cast_like,
    check_same_tree,
    check_state,
    debiased_momentum,
    descend,
    increment,
    update_moment,
    zeros_like,
)
from optimizers.registry import LR_GRID, MOMENTUM, SECOND_MOMENT, OptimizerSpec, Range


class AdabeliefState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second central moment s (eps_root included)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""AdaBelief (Zhuang et al., 2020).

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        s_t     = b2 * s_{t-1} + (1 - b2) * |g_t - m_t|^2 + eps_root
        mhat_t  = m_t / (1 - b1^t)
        mhat_t  = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)   (nesterov=True)
        shat_t  = s_t / (1 - b2^t)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(shat_t) + eps)

    eps_root is added to the stored s_t every step, as in `optax.adabelief`, whose
    arguments and defaults this factory shares (the paper's are eps=1e-8, eps_root=0).

    Reference: Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief
    in Observed Gradients", NeurIPS 2020.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)

    def init(params):
        return AdabeliefState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AdabeliefState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = jax.tree.map(
            lambda g, m, s: (1 - b2) * abs_sq(g - m) + b2 * s + eps_root, grads, mu, state.nu
        )
        correction1, correction2 = 1 - b1**t, 1 - b2**t  # counter's float type, cast per leaf
        mhat = debiased_momentum(mu, grads, b1, t, correction1, nesterov)
        shat = jax.tree.map(lambda s: s / correction2.astype(s.dtype), nu)
        direction = jax.tree.map(lambda m, s: m / (jnp.sqrt(s) + eps), mhat, shat)
        new_state = AdabeliefState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # eps (1e-16 by default) sits far below Adam's.
    "adabelief": OptimizerSpec(
        adabelief,
        LR_GRID,
        optax_name="adabelief",
        search_space={"b1": MOMENTUM, "b2": SECOND_MOMENT, "eps": Range(1e-16, 1e-6)},
        default_learning_rate=1e-3,  # Zhuang et al. 2020
    ),
}
__all__ = ["AdabeliefState", "adabelief"]
