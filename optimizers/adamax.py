"""AdaMax (Adam with the infinity norm) and AdaMaxW (with decoupled weight decay)."""

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
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY, OptimizerSpec


class AdamaxState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # infinity-norm moment u


def _check_adamax(learning_rate, b1, b2, eps):
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)


def _init_adamax(params):
    return AdamaxState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params))


def _adamax_direction(grads, state, b1, b2, eps):
    """mhat / u and the new state: the body of AdaMax and AdaMaxW."""
    t = increment(state.count)
    mu = update_moment(grads, state.mu, b1, 1)
    nu = jax.tree.map(lambda g, u: jnp.maximum(jnp.abs(g) + eps, b2 * u), grads, state.nu)
    correction1 = 1 - b1**t  # in the counter's float type, cast per leaf
    direction = jax.tree.map(lambda m, u: (m / correction1.astype(m.dtype)) / u, mu, nu)
    return direction, AdamaxState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdaMax (Kingma & Ba, 2015, section 7.1): Adam with an infinity-norm second moment.

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        u_t     = max(b2 * u_{t-1}, |g_t| + eps)
        theta_t = theta_{t-1} - lr_t * (m_t / (1 - b1^t)) / u_t

    eps is added to |g_t| inside the max, as in `optax.adamax`, whose arguments and
    defaults this factory shares.

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    _check_adamax(learning_rate, b1, b2, eps)

    def init(params):
        return _init_adamax(params)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamaxState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = _adamax_direction(grads, state, b1, b2, eps)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
) -> Optimizer:
    r"""AdaMaxW: AdaMax with decoupled weight decay, as `optax.adamaxw`.

    With m_t and u_t as in `adamax` and weight decay wd_t:

        theta_t = theta_{t-1} - lr_t * ((m_t / (1 - b1^t)) / u_t + wd_t * theta_{t-1})

    `weight_decay` may be a schedule; `mask` (a tree of bools shaped like the params
    or a prefix of it, or a function of the params returning one) selects the leaves
    that decay.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    _check_adamax(learning_rate, b1, b2, eps)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return _init_adamax(params)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamaxState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = _adamax_direction(grads, state, b1, b2, eps)
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "adamax": OptimizerSpec(
        adamax,
        LR_GRID,
        optax_name="adamax",
        search_space=ADAM_SPACE,
        default_learning_rate=2e-3,  # PyTorch
    ),
    "adamaxw": OptimizerSpec(
        adamaxw,
        LR_GRID,
        optax_name="adamaxw",
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY},
        default_learning_rate=2e-3,  # PyTorch's Adamax
    ),
}
__all__ = ["AdamaxState", "adamax", "adamaxw"]
