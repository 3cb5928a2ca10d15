"""RAdam: Adam with a rectified (variance-corrected) adaptive learning rate."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_same_tree,
    check_state,
    debiased_momentum,
    descend,
    increment,
    update_moment,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, OptimizerSpec


class RadamState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Rectified Adam (Liu et al., 2020).

    For step t = 1, 2, ... with gradient g_t, m_t, v_t, mhat_t and vhat_t as in
    `adam` (the Nesterov mhat_t when nesterov=True):

        rho_inf = 2 / (1 - b2) - 1
        rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
        r_t     = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        d_t     = r_t * mhat_t / (sqrt(vhat_t + eps_root) + eps)   if rho_t >= threshold
        d_t     = mhat_t                                           otherwise
        theta_t = theta_{t-1} - lr_t * d_t

    Same arguments and defaults as `optax.radam` (the paper's threshold is 4;
    optax's default, and ours, is 5).

    Reference: Liu et al., "On the Variance of the Adaptive Learning Rate and
    Beyond", ICLR 2020.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)

    def init(params):
        return RadamState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        check_state(state, RadamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        # rho_t and the bias corrections are in the counter's float type, cast per leaf.
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        b2t = b2**t
        rho = rho_inf - 2 * t * b2t / (1 - b2t)
        r = jnp.sqrt(
            (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
        )
        correction1, correction2 = 1 - b1**t, 1 - b2t
        mhat = debiased_momentum(mu, grads, b1, t, correction1, nesterov)
        vhat = jax.tree.map(lambda v: v / correction2.astype(v.dtype), nu)
        direction = jax.tree.map(
            lambda m, v: jnp.where(
                rho >= threshold, r.astype(m.dtype) * m / (jnp.sqrt(v + eps_root) + eps), m
            ),
            mhat,
            vhat,
        )
        new_state = RadamState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "radam": OptimizerSpec(
        radam,
        LR_GRID,
        optax_name="radam",
        search_space=ADAM_SPACE,
        default_learning_rate=1e-3,  # PyTorch
    ),
}
__all__ = ["RadamState", "radam"]
