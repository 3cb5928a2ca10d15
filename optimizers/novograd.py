"""NovoGrad: Adam-like steps normalised by a per-layer second moment."""

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
    check_state,
    descend,
    increment,
    require_params,
    state_dtype,
    zeros_like,
)
from optimizers.registry import EPS, LR_GRID, MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range


class NovogradState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, one array per leaf
    nu: Any  # second moment v, one scalar per leaf


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
) -> Optimizer:
    r"""NovoGrad (Ginsburg et al., 2019): layer-wise second moments, decoupled decay.

    For step t with gradient g_t, per leaf (layer):

        v_t     = ||g_t||^2                                   (t = 1)
        v_t     = (1 - b2) * ||g_t||^2 + b2 * v_{t-1}         (t > 1)
        a_t     = g_t / (sqrt(v_t + eps_root) + eps) + wd * theta_{t-1}
        m_t     = a_t  (t = 1),   m_t = b1 * m_{t-1} + a_t    (t > 1)
        theta_t = theta_{t-1} - lr_t * m_t

    Same arguments and defaults as `optax.novograd`; `weight_decay` is a number here,
    as optax's rule uses it.

    Reference: Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive
    Moments for Training of Deep Networks", arXiv:1905.11286, 2019.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    if callable(weight_decay):
        raise NotImplementedError("novograd's weight_decay must be a number, not a schedule")
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        nu = jax.tree.map(lambda p: jnp.zeros([], state_dtype(p.dtype)), params)
        return NovogradState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=nu)

    def update(grads, state, params=None, **extra):
        check_state(state, NovogradState)
        del extra
        require_params("novograd", params)
        check_same_tree(grads, params, "grads", "params")
        first = state.count == 0
        # Both moments are updated inside lax.cond, as in optax, so that XLA compiles (and
        # rounds) each branch alike: this rule's path is chaotic near the optimum, where a
        # single differing ulp grows to the step size within a couple of hundred steps.
        nu = jax.lax.cond(
            first,
            lambda: jax.tree.map(
                lambda g, v: (jnp.linalg.norm(g) ** 2).astype(v.dtype), grads, state.nu
            ),
            lambda: jax.tree.map(
                lambda g, v: (1 - b2) * jnp.linalg.norm(g) ** 2 + b2 * v, grads, state.nu
            ),
        )

        def normalised():
            return jax.tree.map(
                lambda g, p, v: g / (jnp.sqrt(v + eps_root) + eps) + weight_decay * p,
                grads,
                params,
                nu,
            )

        mu = jax.lax.cond(
            first,
            normalised,
            lambda: jax.tree.map(lambda m, a: b1 * m + a, state.mu, normalised()),
        )
        new_state = NovogradState(
            count=increment(state.count), mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu)
        )
        return descend(learning_rate, state.count, mu), new_state

    return Optimizer(init, update)


REGISTRY = {
    # b2 averages per-layer gradient norms: 0.25 by default, up to 0.98 in the paper.
    "novograd": OptimizerSpec(
        novograd,
        LR_GRID,
        optax_name="novograd",
        search_space={
            "b1": MOMENTUM,
            "b2": Range(0.1, 0.999, "one_minus_log"),
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1e-3,  # torch-optimizer's NovoGrad
    ),
}
__all__ = ["NovogradState", "novograd"]
