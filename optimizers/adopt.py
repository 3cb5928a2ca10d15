"""ADOPT: Adam with the second moment of the previous step and the momentum after scaling."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_same_tree,
    descend,
    increment,
    update_moment,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, OptimizerSpec


class AdoptState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum of the scaled gradients, in mu_dtype when given
    nu: Any  # second moment v


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = lambda t: t**0.25,
) -> Optimizer:
    r"""ADOPT (Taniguchi et al., 2024): Adam that scales by the second moment of the step before.

    For step t = 0, 1, 2, ... with gradient g_t, v_{-1} = 0 and m_{-1} = 0:

        v_t     = g_t^2                                   (t = 0)
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2         (t > 0)
        s_t     = clip(g_t / max(sqrt(v_{t-1}), eps), -c_t, c_t),   c_t = clip_value_fn(t)
        m_t     = 0                                       (t = 0)
        m_t     = b1 * m_{t-1} + (1 - b1) * s_t           (t > 0)
        d_t     = m_t,   or b1 * m_t + (1 - b1) * s_t     (nesterov=True, t > 0)
        theta_t = theta_{t-1} - lr_t * d_t

    The first step only initialises v, so theta does not move. Scaling by v_{t-1},
    which does not depend on g_t, is what lets ADOPT converge for any b2.
    `use_clipping=False` drops the clip (c_t = inf). Same arguments and defaults as
    `optax.contrib.adopt`.

    Reference: Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with
    the Optimal Rate", NeurIPS 2024.
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)

    def init(params):
        return AdoptState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like(params, mu_dtype), nu=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        # At t = 0, v takes g^2 whole and m stays 0: b2 acts as 0, b1 as 1.
        b1_t = jnp.where(state.count > 0, b1, 1)
        b2_t = jnp.where(state.count > 0, b2, 0)
        nu = update_moment(grads, state.nu, b2_t, 2)
        scaled = jax.tree.map(lambda g, v: g / jnp.maximum(jnp.sqrt(v), eps), grads, state.nu)
        if use_clipping:
            c = clip_value_fn(state.count)
            scaled = jax.tree.map(lambda s: jnp.clip(s, -c, c), scaled)
        mu = update_moment(scaled, state.mu, b1_t, 1)
        direction = update_moment(scaled, mu, b1_t, 1) if nesterov else mu
        new_state = AdoptState(
            count=increment(state.count), mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu)
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper trains with Adam's learning rates (1e-3 on its image and language tasks).
    "adopt": OptimizerSpec(
        adopt,
        LR_GRID,
        search_space=ADAM_SPACE,
        default_learning_rate=1e-3,  # Taniguchi et al. 2024
        reference="optax.contrib 0.2.8 adopt",
    ),
}
__all__ = ["AdoptState", "adopt"]
