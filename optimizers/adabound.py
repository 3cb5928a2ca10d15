"""AdaBound and AMSBound: Adam whose per-coordinate step is clipped into bounds that
close in on one SGD learning rate."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    increment,
    value_at,
)
from optimizers.registry import (
    EPS,
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
    second_moment,
)


class AdaboundState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v
    nu_max: Any  # running maximum of v (AMSBound; zeros and unused otherwise)


def adabound(
    learning_rate: ScalarOrSchedule = 1e-3,
    final_lr: float = 1e-1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdaBound (Luo et al., 2019), and AMSBound with ams_bound=True.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay):

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        u_t     = max(u_{t-1}, v_t)   (ams_bound=True; u_t = v_t otherwise)
        f_t     = final_lr * lr_t / lr_0
        lo_t    = f_t * (1 - 1 / (gamma * t + 1)),    hi_t = f_t * (1 + 1 / (gamma * t))
        eta_t   = clip(lr_t * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(u_t + 1e-15) + eps), lo_t, hi_t)
        theta_t = theta_{t-1} - eta_t * m_t

    Early on the bounds are wide and the step is Adam's; as t grows both close in on
    final_lr, and the rule turns into SGD with momentum. Decoupled decay (the default,
    weight_decouple=True) multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with
    fixed_decay) before the step.

    Follows `pytorch_optimizer.AdaBound` (betas named b1, b2, lr named learning_rate),
    as the authors' code does, where the paper differs: Adam's bias corrections inside
    the clipped step, and no further 1 / sqrt(t) decay of the clipped step (the paper's
    eta_t / sqrt(t)).

    Reference: Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate", ICLR 2019.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_nonnegative("final_lr", final_lr)
    check_nonnegative("gamma", gamma)

    def init(params):
        return initial_state(AdaboundState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adabound", state, AdaboundState, grads, params)
        t = increment(state.count)
        lr, lr_0 = value_at(learning_rate, state.count), value_at(learning_rate, 0)
        final = jnp.where(lr_0 > 0, final_lr * lr / jnp.where(lr_0 > 0, lr_0, 1.0), 0.0)
        lower = final * (1 - 1 / (gamma * t + 1))
        upper = final * (1 + 1 / (gamma * t))
        step_size = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)

        def leaf(g, m, v, v_max, p):
            dtype = p.dtype
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - b1)
            v, v_max, denominator = second_moment(g, v, v_max, b2, ams_bound, eps)
            eta = jnp.clip(
                jnp.asarray(step_size, dtype) / denominator,
                jnp.asarray(lower, dtype),
                jnp.asarray(upper, dtype),
            )
            decay = decoupled_decay(
                p,
                learning_rate_at(learning_rate, state.count, dtype),
                weight_decay,
                weight_decouple,
                fixed_decay,
            )
            return decay - eta * m, m, v, v_max

        updates, mu, nu, nu_max = map_leaves(leaf, grads, state.mu, state.nu, state.nu_max, params)
        return updates, advanced(state, count=t, mu=mu, nu=nu, nu_max=nu_max)

    return Optimizer(init, update)


def amsbound(
    learning_rate: ScalarOrSchedule = 1e-3,
    final_lr: float = 1e-1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AMSBound (Luo et al., 2019): `adabound` with ams_bound=True, the step bounded
    by the running maximum of the second moment (as AMSGrad's):

        u_t     = max(u_{t-1}, v_t)
        theta_t = theta_{t-1} - clip(lr_t * sqrt(1 - b2^t) / (1 - b1^t)
                                     / (sqrt(u_t + 1e-15) + eps), lo_t, hi_t) * m_t

    with m_t, v_t, lo_t and hi_t as in `adabound`.

    Reference: Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate", ICLR 2019.
    """
    return adabound(
        learning_rate,
        final_lr,
        b1,
        b2,
        gamma,
        weight_decay,
        weight_decouple,
        fixed_decay,
        ams_bound=True,
        eps=eps,
    )


SPACE = {
    "b1": MOMENTUM,
    "b2": SECOND_MOMENT,
    # The SGD learning rate the bounds close in on, and how fast (the bounds are within
    # 1 / (gamma * t) of it at step t).
    "final_lr": Range(1e-3, 1.0),
    "gamma": Range(1e-4, 1e-1),
    "eps": EPS,
    "weight_decay": WEIGHT_DECAY_OR_OFF,
}

REGISTRY = {
    "adabound": OptimizerSpec(
        adabound, LR_GRID, search_space=SPACE, reference="pytorch-optimizer 4.1.0 AdaBound"
    ),
    "amsbound": OptimizerSpec(
        amsbound,
        LR_GRID,
        search_space=SPACE,
        reference="pytorch-optimizer 4.1.0 AdaBound(ams_bound=True)",
    ),
}
__all__ = ["AdaboundState", "adabound", "amsbound"]
