"""Adam and its variants: AdamW (decoupled weight decay), NAdam and NAdamW (Nesterov)."""

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
    debiased_momentum,
    descend,
    increment,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY, OptimizerSpec


class AdamState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, in mu_dtype when given
    nu: Any  # second moment v


def check_adam(learning_rate, b1, b2, eps, eps_root):
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("eps_root", eps_root)


def init_adam(params, mu_dtype):
    return AdamState(
        count=jnp.zeros([], jnp.int32), mu=zeros_like(params, mu_dtype), nu=zeros_like(params)
    )


def adam_direction(grads, state, b1, b2, eps, eps_root, nesterov):
    """mhat / (sqrt(vhat + eps_root) + eps) and the new state: the body of every Adam.

    Shared by the Adam variants here and by optimistic Adam, which extrapolates it.
    """
    t = increment(state.count)
    mu = update_moment(grads, state.mu, b1, 1)
    nu = update_moment(grads, state.nu, b2, 2)
    # Bias corrections are computed in the counter's float type, then cast to
    # the moment's dtype, so that b^t does not round to 1 in low precision.
    correction1, correction2 = 1 - b1**t, 1 - b2**t
    mhat = debiased_momentum(mu, grads, b1, t, correction1, nesterov)
    vhat = jax.tree.map(lambda v: v / correction2.astype(v.dtype), nu)
    direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mhat, vhat)
    return direction, AdamState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Adam (Kingma & Ba, 2015), optionally with Nesterov momentum (NAdam, Dozat 2016).

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * |g_t|^2
        mhat_t  = m_t / (1 - b1^t)
        mhat_t  = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)   (nesterov=True)
        vhat_t  = v_t / (1 - b2^t)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(vhat_t + eps_root) + eps)

    eps sits outside the square root, eps_root inside, as in `optax.adam`, whose
    arguments and defaults this factory shares.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)

    def init(params):
        return init_adam(params, mu_dtype)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = adam_direction(grads, state, b1, b2, eps, eps_root, nesterov)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    With m_t, v_t, mhat_t and vhat_t as in `adam` and weight decay wd_t:

        theta_t = theta_{t-1} - lr_t * (mhat_t / (sqrt(vhat_t + eps_root) + eps)
                                        + wd_t * theta_{t-1})

    The decay is scaled by the learning rate but not by Adam's preconditioner.
    `weight_decay` may be a schedule; `mask` (a tree of bools shaped like the params
    or a prefix of it, or a function of the params returning one) selects the leaves
    that decay. Same arguments and defaults as `optax.adamw`.

    References: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return init_adam(params, mu_dtype)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = adam_direction(grads, state, b1, b2, eps, eps_root, nesterov)
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""NAdam: `adam` with Nesterov momentum (Dozat, 2016), as `optax.nadam`.

        mhat_t  = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(vhat_t + eps_root) + eps)

    with m_t, v_t and vhat_t as in `adam`.

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""NAdamW: `adamw` with Nesterov momentum, as `optax.nadamw`.

        theta_t = theta_{t-1} - lr_t * (mhat_t / (sqrt(vhat_t + eps_root) + eps)
                                        + wd_t * theta_{t-1})

    with the Nesterov mhat_t of `nadam`.

    References: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return adamw(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov
    )


REGISTRY = {
    "adam": OptimizerSpec(
        adam,
        LR_GRID,
        optax_name="adam",
        search_space=ADAM_SPACE,
        default_learning_rate=1e-3,  # Kingma & Ba 2015
    ),
    "adamw": OptimizerSpec(
        adamw,
        LR_GRID,
        optax_name="adamw",
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY},
        default_learning_rate=1e-3,  # PyTorch (Kingma & Ba 2015)
    ),
    "nadam": OptimizerSpec(
        nadam,
        LR_GRID,
        optax_name="nadam",
        search_space=ADAM_SPACE,
        default_learning_rate=2e-3,  # PyTorch
    ),
    "nadamw": OptimizerSpec(
        nadamw,
        LR_GRID,
        optax_name="nadamw",
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY},
        default_learning_rate=2e-3,  # PyTorch's NAdam, decoupled_weight_decay=True
    ),
}
__all__ = ["AdamState", "adam", "adamw", "nadam", "nadamw"]
