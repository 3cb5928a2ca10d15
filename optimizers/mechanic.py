"""Mechanic: a learning-rate tuner that scales any base optimizer's steps by betting."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    copy_tree,
    increment,
    lowest_dtype,
    require_params,
    squared_norm,
    vdot,
)
from optimizers.registry import WEIGHT_DECAY, OptimizerSpec, log_grid


class MechanicState(NamedTuple):
    base_optimizer_state: Any
    count: jax.Array  # int32 number of updates taken
    r: jax.Array  # (num_betas,) discounted rewards of the bets
    m: jax.Array  # (num_betas,) running maximum of |h|
    v: jax.Array  # (num_betas,) discounted sum of h^2
    s: jax.Array  # (num_betas,) scale factors; their sum multiplies the base steps
    x0: Any  # theta_0, the reference point


def mechanize(
    base_optimizer: Optimizer,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> Optimizer:
    r"""Mechanic (Cutkosky et al., 2023): theta_t = theta_0 + s_t * Delta_t, where Delta_t
    sums the base optimizer's updates and the scale s_t is learnt by online betting.

    For step t with gradient g_t, base update u_t, S = sum_i s_{t-1,i} and, per
    beta_i = 1 - 0.1^i (i = 1 .. num_betas):

        g'_t      = g_t + wd * S * ||g_t|| / (||theta_{t-1}|| + eps) * theta_{t-1}
        Delta_{t-1} = (theta_0 - theta_{t-1}) / (S + eps)
        h_t       = <g'_t, Delta_{t-1}>
        m_t,i     = max(beta_i * m_{t-1,i}, |h_t| + eps)
        v_t,i     = beta_i^2 * v_{t-1,i} + h_t^2
        r_t,i     = beta_i * r_{t-1,i} + clip(h_t, -m_{t-1,i}, m_{t-1,i}) * s_{t-1,i}
        s_t,i     = (s_init / num_betas * m_t,i + max(r_t,i, 0)) / (sqrt(v_t,i) + eps)
        theta_t   = theta_0 - (sum_i s_t,i) * (Delta_{t-1} - u_t)

    Norms and <.,.> run over all leaves together. The base optimizer keeps its own
    learning rate; Mechanic learns a multiplier for it. Same arguments and defaults
    as `optax.contrib.mechanize`.

    Reference: Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner",
    NeurIPS 2023.
    """
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("eps", eps)
    check_nonnegative("s_init", s_init)
    if num_betas < 1:
        raise ValueError(f"num_betas must be >= 1, got {num_betas!r}")

    def init(params):
        dtype = lowest_dtype(params)
        return MechanicState(
            base_optimizer_state=base_optimizer.init(params),
            count=jnp.zeros([], jnp.int32),
            r=jnp.zeros([num_betas], dtype),
            m=jnp.zeros([num_betas], dtype),
            v=jnp.zeros([num_betas], dtype),
            s=jnp.ones([num_betas], dtype) * s_init,
            x0=copy_tree(params),
        )

    def update(grads, state, params=None, **extra):
        require_params("mechanize", params)
        check_same_tree(grads, params, "grads", "params")
        base_updates, base_state = base_optimizer.update(
            grads, state.base_optimizer_state, params, **extra
        )
        # The reference point is the params of the first update.
        x0 = jax.tree.map(lambda p, x0: jnp.where(state.count == 0, p, x0), params, state.x0)
        s_sum = jnp.sum(state.s)
        grad_norm, param_norm = jnp.sqrt(squared_norm(grads)), jnp.sqrt(squared_norm(params))
        grads = jax.tree.map(
            lambda g, p: g + weight_decay * s_sum * grad_norm / (param_norm + eps) * p,
            grads,
            params,
        )
        delta_before = jax.tree.map(lambda p, x0: (x0 - p) / (s_sum + eps), params, x0)
        delta = jax.tree.map(lambda d, u: d - u, delta_before, base_updates)
        h = vdot(grads, delta_before)
        betas = jnp.array([1.0 - 0.1**i for i in range(1, num_betas + 1)], state.s.dtype)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
        v = betas**2 * state.v + h**2
        r = betas * state.r + jnp.clip(h, -state.m, state.m) * state.s
        wealth = (s_init / num_betas) * m + jnp.maximum(0.0, r)
        s = wealth / (jnp.sqrt(v) + eps)
        new_params = jax.tree.map(lambda x0, d: x0 - jnp.sum(s) * d, x0, delta)
        updates = jax.tree.map(lambda new, p: new - p, new_params, params)
        dtype = state.s.dtype
        return updates, MechanicState(
            base_optimizer_state=base_state,
            count=increment(state.count),
            r=r.astype(dtype),
            m=m.astype(dtype),
            v=v.astype(dtype),
            s=s.astype(dtype),
            x0=x0,
        )

    return Optimizer(init, update)


def mechanic_adam(
    learning_rate: ScalarOrSchedule,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> Optimizer:
    """`mechanize(adam(learning_rate))`: Mechanic tuning Adam, as in the paper's experiments."""
    check_nonnegative("learning_rate", learning_rate)
    return mechanize(adam(learning_rate), weight_decay, eps, s_init, num_betas)


REGISTRY = {
    # Mechanic multiplies the base step by a learnt s; the paper keeps Adam's usual
    # learning rate and finds the result insensitive to it. weight_decay is the decay of
    # its own s update (0.01 in the paper).
    "mechanize": OptimizerSpec(
        mechanic_adam,
        log_grid(1e-4, 1.0, per_decade=1),
        search_space={"weight_decay": WEIGHT_DECAY},
        default_learning_rate=1e-3,  # its base Adam's (Kingma & Ba 2015)
        reference="optax.contrib 0.2.8 mechanize(adam)",
    ),
}
__all__ = ["MechanicState", "mechanic_adam", "mechanize"]
