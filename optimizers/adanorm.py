"""AdaNorm: Adam whose momentum is fed gradients rescaled up to their running average norm."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
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
    coupled_gradient,
    decoupled_decay,
    initial_state,
    leaf_zeros,
    learning_rate_at,
    lerp,
    map_leaves,
    second_moment,
)


class AdanormState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, of the norm-corrected gradients
    nu: Any  # second moment v, of the gradients themselves
    nu_max: Any  # running maximum of v (ams_bound; zeros and unused otherwise)
    grad_norm: Any  # e: per leaf, a scalar moving average of ||g_t||


def adanorm_gradient(g, e, r):
    """(s_t, e_t): the running norm e_t = r * e_{t-1} + (1 - r) * ||g_t|| and g_t scaled
    up to it, s_t = e_t * g_t / ||g_t||, where ||g_t|| < e_t (g_t itself elsewhere)."""
    norm = jnp.linalg.norm(g.reshape(-1)).astype(e.dtype)
    e = r * e + (1.0 - r) * norm
    boost = (norm > 0) & (e > norm)
    s = jnp.where(boost, g * e / jnp.where(boost, norm, 1.0), g)
    return s, e


def adanorm(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.99,
    r: float = 0.95,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdaNorm (Dubey et al., 2023): Adam whose first moment is fed each gradient
    rescaled to at least the running average of the gradient norms of its leaf.

    For step t with gradient g_t of a leaf (plus wd * theta_{t-1} under coupled decay):

        e_t     = r * e_{t-1} + (1 - r) * ||g_t||                 (e_0 = 0, one per leaf)
        s_t     = (e_t / ||g_t||) * g_t   if 0 < ||g_t|| < e_t,   else g_t
        m_t     = b1 * m_{t-1} + (1 - b1) * s_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        u_t     = max(u_{t-1}, v_t)   (ams_bound=True; u_t = v_t otherwise)
        theta_t = theta_{t-1} - lr_t / (1 - b1^t) * m_t
                                     / ((sqrt(u_t + 1e-15) + eps) / sqrt(1 - b2^t))

    ||.|| is the 2-norm of the whole leaf. Decoupled decay (the default,
    weight_decouple=True) multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with
    fixed_decay) before the step. Arguments and defaults as `pytorch_optimizer.AdaNorm`
    (betas named b1, b2, lr named learning_rate).

    Reference: Dubey, Singh & Chaudhuri, "AdaNorm: Adaptive Gradient Norm Correction
    based Optimizer for CNNs", WACV 2023.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_unit_interval("r", r)

    def init(params):
        return initial_state(AdanormState, params, grad_norm=leaf_zeros(params))

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adanorm", state, AdanormState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        step_size = lr_t / (1.0 - b1**t)
        correction2 = jnp.sqrt(1.0 - b2**t)

        def leaf(g, m, v, v_max, e, p):
            lr = jnp.asarray(lr_t, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            s, e = adanorm_gradient(g, e, r)
            m = lerp(m, s, 1.0 - b1)
            v, v_max, denominator = second_moment(g, v, v_max, b2, ams_bound, eps)
            denominator = denominator / correction2.astype(p.dtype)
            step = -jnp.asarray(step_size, p.dtype) * (m / denominator)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            return decay + step, m, v, v_max, e

        updates, mu, nu, nu_max, norms = map_leaves(
            leaf, grads, state.mu, state.nu, state.nu_max, state.grad_norm, params
        )
        return updates, advanced(state, count=t, mu=mu, nu=nu, nu_max=nu_max, grad_norm=norms)

    return Optimizer(init, update)


REGISTRY = {
    "adanorm": OptimizerSpec(
        adanorm,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            # The memory of the running gradient norm, 1 / (1 - r): 2 to 1000 steps.
            "r": Range(0.5, 0.999, "one_minus_log"),
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdaNorm",
    ),
}
__all__ = ["AdanormState", "adanorm"]
