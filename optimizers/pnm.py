"""Positive-negative momentum: PNM and AdaPNM, steps along the difference of two
interleaved momenta."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_unit_interval,
    increment,
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
    check_decay,
    check_fraction,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
    second_moment,
)

# The weight of the negative momentum (the paper's beta_0): 0 is plain momentum.
NEGATIVE_WEIGHT = Range(0.0, 1.0, "linear")


class PnmState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    recent: Any  # m_{t-1}: the momentum updated at the last step
    older: Any  # m_{t-2}: the other one, updated the step before


class AdapnmState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    recent: Any  # m_{t-1}
    older: Any  # m_{t-2}
    nu: Any  # second moment v
    nu_max: Any  # running maximum of v (ams_bound; zeros and unused otherwise)


def _pn_momentum(m, m_neg, b0):
    """((1 + b0) * m_t - b0 * m_{t-1}) / sqrt((1 + b0)^2 + b0^2)."""
    scale = jnp.asarray(1.0 / jnp.sqrt((1.0 + b0) ** 2 + b0**2), m.dtype)
    return (m * (1.0 + b0) - b0 * m_neg) * scale


def pnm(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    beta0: float = 1.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""PNM (Xie et al., 2021): SGD along a positive-negative combination of two momenta,
    each fed every other gradient, which enlarges the gradient noise at no cost.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay), the two
    momenta alternate: m_t updates the one last updated at step t - 2,

        m_t     = b1^2 * m_{t-2} + (1 - b1^2) * g_t                (m_0 = m_{-1} = 0)
        theta_t = theta_{t-1} - lr_t * ((1 + beta0) * m_t - beta0 * m_{t-1})
                                     / sqrt((1 + beta0)^2 + beta0^2)

    beta0 (the paper's name) weighs the negative momentum, in [0, 1]: 0 is SGD with
    momentum b1^2. Decoupled decay (the default, weight_decouple=True) multiplies
    theta_{t-1} by 1 - lr_t * wd (1 - wd with fixed_decay) before the step. Arguments and
    defaults as `pytorch_optimizer.PNM` (its betas named b1, beta0, lr named learning_rate);
    its eps, unused, is left out.

    Reference: Xie, Yuan, Zhu & Sugiyama, "Positive-Negative Momentum: Manipulating
    Stochastic Gradient Noise to Improve Generalization", ICML 2021.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_fraction("beta0", beta0)
    check_decay(weight_decay)

    def init(params):
        return initial_state(PnmState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("pnm", state, PnmState, grads, params)

        def leaf(g, m_recent, m_older, p):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m_older, g, 1.0 - b1**2)
            step = -lr * _pn_momentum(m, m_recent, beta0)
            return decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay) + step, m

        updates, momenta = map_leaves(leaf, grads, state.recent, state.older, params)
        return updates, advanced(
            state, count=increment(state.count), recent=momenta, older=state.recent
        )

    return Optimizer(init, update)


def adapnm(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    beta0: float = 1.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = True,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdaPNM (Xie et al., 2021): PNM's positive-negative momentum with Adam's
    (AMSGrad's by default) preconditioner.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay), m_t as
    in `pnm` (b1^2 weighting every other gradient) and beta0 the negative momentum's
    weight:

        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        u_t     = max(u_{t-1}, v_t)   (ams_bound=True, the default; u_t = v_t otherwise)
        n_t     = ((1 + beta0) * m_t - beta0 * m_{t-1}) / sqrt((1 + beta0)^2 + beta0^2)
        theta_t = theta_{t-1} - lr_t / (1 - b1^t) * n_t
                                     / ((sqrt(u_t + 1e-15) + eps) / sqrt(1 - b2^t))

    Decoupled decay (the default, weight_decouple=True) multiplies theta_{t-1} by
    1 - lr_t * wd (1 - wd with fixed_decay) before the step. Follows
    `pytorch_optimizer.AdaPNM` (its betas named b1, b2, beta0, lr named learning_rate),
    including its first-moment correction 1 - b1^t, although each momentum decays by
    b1^2 per update.

    Reference: Xie, Yuan, Zhu & Sugiyama, "Positive-Negative Momentum: Manipulating
    Stochastic Gradient Noise to Improve Generalization", ICML 2021.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_fraction("beta0", beta0)

    def init(params):
        return initial_state(AdapnmState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adapnm", state, AdapnmState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        step_size = lr_t / (1.0 - b1**t)
        correction2 = jnp.sqrt(1.0 - b2**t)

        def leaf(g, m_recent, m_older, v, v_max, p):
            lr = jnp.asarray(lr_t, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m_older, g, 1.0 - b1**2)
            v, v_max, denominator = second_moment(g, v, v_max, b2, ams_bound, eps)
            denominator = denominator / correction2.astype(p.dtype)
            momentum = _pn_momentum(m, m_recent, beta0)
            step = -jnp.asarray(step_size, p.dtype) * (momentum / denominator)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            return decay + step, m, v, v_max

        updates, momenta, nu, nu_max = map_leaves(
            leaf, grads, state.recent, state.older, state.nu, state.nu_max, params
        )
        return updates, advanced(
            state, count=t, recent=momenta, older=state.recent, nu=nu, nu_max=nu_max
        )

    return Optimizer(init, update)


REGISTRY = {
    "pnm": OptimizerSpec(
        pnm,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "beta0": NEGATIVE_WEIGHT,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 PNM",
    ),
    "adapnm": OptimizerSpec(
        adapnm,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "beta0": NEGATIVE_WEIGHT,
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdaPNM",
    ),
}
__all__ = ["AdapnmState", "PnmState", "adapnm", "pnm"]
