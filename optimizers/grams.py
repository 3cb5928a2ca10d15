"""Grams: Adam's step length with the sign of the current gradient."""

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
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec


class GramsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v


def grams(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""Grams (Cao et al., 2024): the magnitude of Adam's step, the direction of the gradient.

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        u_t     = sign(g_t) * |m_t / (1 - b1^t)| / (sqrt(v_t) / sqrt(1 - b2^t) + eps)
        theta_t = theta_{t-1} - lr_t * (u_t + wd_t * theta_{t-1})

    The sign is the gradient's, not the momentum's: where they disagree the step still
    goes downhill. eps is added after the bias correction of sqrt(v_t), as in the
    reference implementation (pytorch-optimizer's `Grams`). The weight decay is
    decoupled (scaled by the learning rate, not by the preconditioner); `mask` (a tree
    of bools or a function of the params) selects the leaves that decay. The reference's
    coupled option (weight_decouple=False) adds the decay to the gradient only after
    the step has been computed from it, so that it changes nothing: it is not offered.

    Reference: Cao, Li and Song, "Grams: Gradient Descent with Adaptive Momentum
    Scaling", arXiv:2412.17107.
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return GramsState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        check_state(state, GramsState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        correction1, root_correction2 = 1 - b1**t, jnp.sqrt(1 - b2**t)
        direction = jax.tree.map(
            lambda g, m, v: (
                jnp.sign(g)
                * jnp.abs(
                    (m / correction1.astype(m.dtype))
                    / (jnp.sqrt(v) / root_correction2.astype(v.dtype) + eps)
                )
            ),
            grads,
            mu,
            nu,
        )
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        new_state = GramsState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "grams": OptimizerSpec(
        grams,
        LR_GRID,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # pytorch-optimizer's Grams (Adam's)
        reference="pytorch-optimizer 4.1.0 Grams",
    ),
}
__all__ = ["GramsState", "grams"]
