"""Quasi-hyperbolic momentum: QHM and QHAdam, steps that mix the momentum with the gradient."""

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
)

# The immediate discount nu weighs the momentum against the plain gradient: 0 is the
# gradient alone, 1 the momentum alone.
DISCOUNT = Range(0.0, 1.0, "linear")


class QhmState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    momentum: Any  # m: exponential moving average of the gradients


def qhm(
    learning_rate: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    nu: float = 1.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""QHM (Ma & Yarats, 2019): SGD stepping along a nu-weighted mix of momentum and gradient.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay):

        m_t     = momentum * m_{t-1} + (1 - momentum) * g_t        (m_0 = 0)
        theta_t = theta_{t-1} - lr_t * (nu * m_t + (1 - nu) * g_t)

    nu = 1 is SGD with (dampened) momentum, nu = 0 plain SGD; the paper recommends
    nu = 0.7 with momentum = 0.999. Decoupled decay (weight_decouple=True) multiplies
    theta_{t-1} by 1 - lr_t * wd (1 - wd with fixed_decay) before the step.
    Arguments and defaults as `pytorch_optimizer.QHM` (lr named learning_rate).

    Reference: Ma & Yarats, "Quasi-hyperbolic momentum and Adam for deep learning",
    ICLR 2019.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_fraction("nu", nu)
    check_decay(weight_decay)

    def init(params):
        return initial_state(QhmState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("qhm", state, QhmState, grads, params)

        def leaf(g, m, p):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - momentum)
            step = -(lr * nu) * m - (lr * (1.0 - nu)) * g
            return decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay) + step, m

        updates, momenta = map_leaves(leaf, grads, state.momentum, params)
        return updates, advanced(state, count=increment(state.count), momentum=momenta)

    return Optimizer(init, update)


def _bits(x):
    """A float32 scalar as its int32 bit pattern."""
    return jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)


def _float32(bits):
    """The float32 scalar of an int32 bit pattern."""
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


class QhadamState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    # b1 * (1 + b1 + ... + b1^(t-1)), b1 times the first moment's debiasing sum, a float32
    # kept as its int32 bit pattern (the floating state follows the params' dtype)
    scaled_sum1: jax.Array
    scaled_sum2: jax.Array  # the same for b2
    mu: Any  # debiased first moment mhat
    nu: Any  # debiased second moment vhat


def qhadam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    nu1: float = 1.0,
    nu2: float = 1.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""QHAdam (Ma & Yarats, 2019): Adam whose moments are nu-weighted mixes of the
    debiased moving averages and the current gradient (and its square).

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay):

        w1_t    = 1 / (1 + b1 + ... + b1^(t-1))  = (1 - b1) / (1 - b1^t)
        w2_t    = 1 / (1 + b2 + ... + b2^(t-1))
        mhat_t  = mhat_{t-1} + w1_t * (g_t - mhat_{t-1})          (mhat_0 = 0)
        vhat_t  = vhat_{t-1} + w2_t * (g_t^2 - vhat_{t-1})
        theta_t = theta_{t-1} - lr_t * (nu1 * mhat_t + (1 - nu1) * g_t)
                                     / (sqrt(nu2 * vhat_t + (1 - nu2) * g_t^2) + eps)

    mhat_t and vhat_t are Adam's debiased moments, kept debiased from step to step.
    nu1 = nu2 = 1 is Adam; the paper recommends nu = (0.7, 1.0) with betas (0.995,
    0.999). Decoupled decay (weight_decouple=True) multiplies theta_{t-1} by
    1 - lr_t * wd (1 - wd with fixed_decay) before the step.

    Follows `pytorch_optimizer.QHAdam` (its betas and nus named b1, b2 and nu1, nu2, lr
    named learning_rate), which keeps the debiasing sums in float32 whatever the
    parameters' dtype: so do we (as int32 bit patterns in the state, whose floating
    leaves follow the params' dtype), and w1_t, w2_t carry float32 rounding (1e-7
    relative) into the moments of float64 parameters as the reference's do.

    Reference: Ma & Yarats, "Quasi-hyperbolic momentum and Adam for deep learning",
    ICLR 2019.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_fraction("nu1", nu1)
    check_fraction("nu2", nu2)

    def init(params):
        return initial_state(
            QhadamState,
            params,
            scaled_sum1=_bits(jnp.zeros([], jnp.float32)),
            scaled_sum2=_bits(jnp.zeros([], jnp.float32)),
        )

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("qhadam", state, QhadamState, grads, params)
        # The sums in float32, each product and sum rounded as the reference rounds them:
        # the state keeps s = b * sum, and a step adds 1 (the new sum) then multiplies by
        # b (the next s), an order XLA cannot contract into one fused multiply-add, where
        # sum * b + 1 would be rounded once instead of twice.
        weight1 = _float32(state.scaled_sum1) + 1.0
        weight2 = _float32(state.scaled_sum2) + 1.0
        inverse1, inverse2 = 1.0 / weight1, 1.0 / weight2

        def leaf(g, m, v, p):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            g2 = g * g
            m = lerp(m, g, inverse1.astype(m.dtype))
            v = lerp(v, g2, inverse2.astype(v.dtype))
            mixed = nu1 * m + (1.0 - nu1) * g
            rms = jnp.sqrt(nu2 * v + (1.0 - nu2) * g2) + eps
            step = -lr * (mixed / rms)
            return decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay) + step, m, v

        updates, mu, nu = map_leaves(leaf, grads, state.mu, state.nu, params)
        return updates, advanced(
            state,
            count=increment(state.count),
            scaled_sum1=_bits(weight1 * jnp.asarray(b1, jnp.float32)),
            scaled_sum2=_bits(weight2 * jnp.asarray(b2, jnp.float32)),
            mu=mu,
            nu=nu,
        )

    return Optimizer(init, update)


REGISTRY = {
    "qhm": OptimizerSpec(
        qhm,
        LR_GRID,
        # momentum reaches 0 (plain SGD, the reference's default); the paper's 0.999 inside.
        search_space={
            "momentum": Range(0.0, 0.999, "one_minus_log"),
            "nu": DISCOUNT,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 QHM",
    ),
    "qhadam": OptimizerSpec(
        qhadam,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "nu1": DISCOUNT,
            "nu2": DISCOUNT,
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 QHAdam",
    ),
}
__all__ = ["QhadamState", "QhmState", "qhadam", "qhm"]
