"""AdEMAMix: Adam with a second, slow momentum added to the fast one; and its simplified form."""

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
    check_unit_interval,
    descend,
    increment,
    update_moment,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import (
    ADAM_SPACE,
    LR_GRID,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
    log_grid,
)


class AdemamixState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds the b3 and alpha schedules
    m1: Any  # fast moving average of the gradients, in mu_dtype when given
    m2: Any  # slow moving average of the gradients, in mu_dtype when given
    nu: Any  # second moment v


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: float = 0.0,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""AdEMAMix (Pagliardini et al., 2024): Adam plus alpha times a slow gradient average.

    For step t = 1, 2, ... with gradient g_t, b3_t and alpha_t (numbers or schedules of
    the step count) and weight decay wd:

        m1_t    = b1 * m1_{t-1} + (1 - b1) * g_t                (fast, bias-corrected)
        m2_t    = b3_t * m2_{t-1} + (1 - b3_t) * g_t            (slow, not corrected)
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        d_t     = (m1_t / (1 - b1^t) + alpha_t * m2_t) / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)
        theta_t = theta_{t-1} - lr_t * (d_t + wd * theta_{t-1})

    The paper warms b3 and alpha up with schedules; pass them as b3 and alpha. `mask`
    selects the leaves that decay. Same arguments and defaults as
    `optax.contrib.ademamix`.

    Reference: Pagliardini et al., "The AdEMAMix Optimizer: Better, Faster, Older", 2024
    (arXiv:2409.03137).
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_unit_interval("b3", b3)
    check_nonnegative("alpha", alpha)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return AdemamixState(
            count=jnp.zeros([], jnp.int32),
            m1=zeros_like(params, mu_dtype),
            m2=zeros_like(params, mu_dtype),
            nu=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        b3_t, alpha_t = value_at(b3, state.count), value_at(alpha, state.count)
        m1 = update_moment(grads, state.m1, b1, 1)
        m2 = update_moment(grads, state.m2, b3_t, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        t = increment(state.count)
        correction1, correction2 = 1 - b1**t, 1 - b2**t
        direction = jax.tree.map(
            lambda m1, m2, v: (
                (m1 / correction1.astype(m1.dtype) + alpha_t * m2)
                / (jnp.sqrt(v / correction2.astype(v.dtype) + eps_root) + eps)
            ),
            m1,
            m2,
            nu,
        )
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        new_state = AdemamixState(
            count=t,
            m1=cast_like(m1, state.m1),
            m2=cast_like(m2, state.m2),
            nu=cast_like(nu, state.nu),
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


class SimplifiedAdemamixState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds the alpha schedule
    m: Any  # undamped sum of past gradients, b1-discounted
    n: Any  # second moment


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""Simplified AdEMAMix (Morwani et al., 2025): one undamped momentum plus alpha * g.

    For step t = 1, 2, ... with gradient g_t, alpha_t (a number or a schedule) and
    weight decay wd:

        m_t     = b1 * m_{t-1} + g_t                   (no (1 - b1) factor)
        n_t     = g_t^2 + b2 * (n_{t-1} - g_t^2)       (the usual EMA, written as a lerp)
        d_t     = (m_t + alpha_t * g_t) / (sqrt(n_t / (1 - b2^t) + eps_root) + eps)
        theta_t = theta_{t-1} - lr_t * (d_t + wd * theta_{t-1})

    The momentum sums about 1 / (1 - b1) gradients, so the learning rate is that much
    smaller than Adam's. Same arguments and defaults as
    `optax.contrib.simplified_ademamix`.

    Reference: Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix,
    and Accelerated SGD Variants", 2025 (arXiv:2502.02431).
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_nonnegative("alpha", alpha)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return SimplifiedAdemamixState(
            count=jnp.zeros([], jnp.int32), m=zeros_like(params), n=zeros_like(params)
        )

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        alpha_t = value_at(alpha, state.count)
        m = jax.tree.map(lambda g, m: g + b1 * m, grads, state.m)
        n = jax.tree.map(lambda g, n: g * g + b2 * (n - g * g), grads, state.n)
        t = increment(state.count)
        correction2 = 1 - b2**t
        direction = jax.tree.map(
            lambda m, g, n: (
                (m + alpha_t * g) / (jnp.sqrt(n / correction2.astype(n.dtype) + eps_root) + eps)
            ),
            m,
            grads,
            n,
        )
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        new_state = SimplifiedAdemamixState(
            count=t, m=cast_like(m, state.m), n=cast_like(n, state.n)
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper runs AdEMAMix at Adam's learning rates (1e-4 to 1e-3 for its language
    # models), with alpha 5-8 and b3 0.999-0.9999.
    "ademamix": OptimizerSpec(
        ademamix,
        LR_GRID,
        search_space=ADAM_SPACE
        | {
            "b3": Range(0.99, 0.99999, "one_minus_log"),
            "alpha": Range(1.0, 10.0, "linear"),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1e-3,  # Adam's (Kingma & Ba 2015), as the paper runs it
        reference="optax.contrib 0.2.8 ademamix",
    ),
    # The momentum sums about 1 / (1 - b1) = 100 gradients: 100x below Adam's grid.
    "simplified_ademamix": OptimizerSpec(
        simplified_ademamix,
        log_grid(1e-6, 1e-2),
        search_space=ADAM_SPACE
        | {"alpha": Range(0.0, 10.0, "linear"), "weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-5,  # Adam's 1e-3 over the 100 gradients the momentum sums
        reference="optax.contrib 0.2.8 simplified_ademamix",
    ),
}
__all__ = ["AdemamixState", "SimplifiedAdemamixState", "ademamix", "simplified_ademamix"]
