"""Adan: adaptive Nesterov momentum."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
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
from optimizers.registry import (
    EPS,
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
)


class AdanState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    m: Any  # moving average of gradients
    v: Any  # moving average of gradient differences
    n: Any  # moving average of the squared Nesterov-corrected gradient
    previous_grad: Any  # g_{t-1}


def adan(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""Adan (Xie et al., 2022), Algorithm 1, with bias correction as in `optax.adan`.

    For step t with gradient g_t, d_t = g_t - g_{t-1} (d_1 = 0):

        m_t     = (1 - b1) * g_t + b1 * m_{t-1}
        v_t     = (1 - b2) * d_t + b2 * v_{t-1}
        n_t     = (1 - b3) * |g_t + (1 - b2) * d_t|^2 + b3 * n_{t-1}
        u_t     = (mhat_t + (1 - b2) * vhat_t) / (sqrt(nhat_t + eps_root) + eps)
        theta_t = theta_{t-1} - lr_t * (u_t + wd_t * theta_{t-1})

    where xhat_t = x_t / (1 - b^t) with each average's own b. Same arguments and
    defaults as `optax.adan`; `mask` limits the weight decay to some leaves.

    Reference: Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster
    Optimizing Deep Models", arXiv:2208.06677, 2022.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_unit_interval("b3", b3)
    check_nonnegative("eps", eps)
    check_nonnegative("eps_root", eps_root)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        # A fresh tree per slot: state buffers never alias, so they can be donated.
        m, v, n, previous_grad = (zeros_like(params) for _ in range(4))
        return AdanState(jnp.zeros([], jnp.int32), m, v, n, previous_grad)

    def update(grads, state, params=None, **extra):
        check_state(state, AdanState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        first = state.count == 0
        diff = jax.tree.map(
            lambda g, p: jnp.where(first, jnp.zeros_like(g), g - p), grads, state.previous_grad
        )
        m = update_moment(grads, state.m, b1, 1)
        v = jax.tree.map(lambda d, v: (1 - b2) * d + b2 * v, diff, state.v)
        n = jax.tree.map(
            lambda g, d, n: (1 - b3) * abs_sq(g + (1 - b2) * d) + b3 * n, grads, diff, state.n
        )
        t = increment(state.count)
        c1, c2, c3 = 1 - b1**t, 1 - b2**t, 1 - b3**t

        def scaled(m, v, n):
            mhat, vhat, nhat = (
                m / c1.astype(m.dtype),
                v / c2.astype(v.dtype),
                n / c3.astype(n.dtype),
            )
            return (mhat + (1 - b2) * vhat) / (jnp.sqrt(nhat + eps_root) + eps)

        direction = with_weight_decay(
            jax.tree.map(scaled, m, v, n), params, weight_decay, state.count, mask
        )
        updates = descend(learning_rate, state.count, direction)
        new_state = AdanState(
            t,
            cast_like(m, state.m),
            cast_like(v, state.v),
            cast_like(n, state.n),
            cast_like(grads, state.previous_grad),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # b2 weighs the gradient differences (0.92 by default, 0.9 in the tests).
    "adan": OptimizerSpec(
        adan,
        LR_GRID,
        optax_name="adan",
        search_space={
            "b1": MOMENTUM,
            "b2": MOMENTUM,
            "b3": SECOND_MOMENT,
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1e-3,  # the paper's PyTorch code (Xie et al. 2022)
    ),
}
__all__ = ["AdanState", "adan"]
