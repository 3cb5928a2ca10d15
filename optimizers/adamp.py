"""AdamP and SGDP: steps with their radial component removed on scale-invariant weights."""

import math
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
    decoupled_decay,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
)

# The cosine threshold's numerator: weights whose gradient is this near orthogonal to
# them (delta / sqrt(fan-in)) count as scale-invariant.
DELTA = Range(0.01, 1.0)
WD_RATIO = Range(0.01, 1.0)


def _rows(x, per_channel):
    return x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)


def _cosine(x, y, eps):
    """|cos(x_i, y_i)| for each row i, each row normalised by max(its norm, eps)."""
    x_norm = jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), eps)
    y_norm = jnp.maximum(jnp.linalg.norm(y, axis=1, keepdims=True), eps)
    return jnp.abs(jnp.sum((x / x_norm) * (y / y_norm), axis=1))


def projected(p, g, perturb, delta, wd_ratio, eps):
    """(the step without its radial component, the weight-decay ratio) of a leaf of rank
    >= 2: the radial component p_hat <p_hat, perturb> is removed, per output channel if
    every channel's |cos(g, p)| < delta / sqrt(its size), else for the whole leaf if
    |cos(g, p)| < delta / sqrt(its size), and the ratio is then wd_ratio; otherwise the
    step as it is, ratio 1."""
    expand = (-1,) + (1,) * (p.ndim - 1)
    result, ratio = perturb, jnp.ones([], p.dtype)
    # The whole-leaf test applies where the per-channel one fails: taken last, first.
    for per_channel in (False, True):
        rows = _rows(p, per_channel)
        invariant = jnp.max(_cosine(_rows(g, per_channel), rows, eps)) < delta / math.sqrt(
            rows.shape[1]
        )
        unit = p / (jnp.linalg.norm(rows, axis=1).reshape(expand) + eps)
        radial = jnp.sum(_rows(unit * perturb, per_channel), axis=1).reshape(expand)
        result = jnp.where(invariant, perturb - unit * radial, result)
        ratio = jnp.where(invariant, jnp.asarray(wd_ratio, p.dtype), ratio)
    return result, ratio


class AdampState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v


def adamp(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdamP (Heo et al., 2021): Adam whose step on a scale-invariant weight (one whose
    gradient is near orthogonal to it) loses its radial component, so that the
    momentum does not inflate the weight's norm.

    For step t with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        p_t     = sqrt(1 - b2^t) * m_t / (sqrt(v_t) + eps)
                  (m_t replaced by b1 * m_t + (1 - b1) * g_t with nesterov=True)
        p_t     = p_t - w_hat <w_hat, p_t>,   w_hat = theta_{t-1} / (||theta_{t-1}|| + eps)
                  (leaves of rank >= 2 whose max |cos(g_t, theta_{t-1})| < delta / sqrt(n),
                   per output channel of n entries if all channels pass, else the whole
                   leaf of n entries; then r = wd_ratio, else r = 1)
        theta_t = theta_{t-1} - lr_t / (1 - b1^t) * p_t

    Decoupled decay (the default) multiplies theta_{t-1} by 1 - lr_t * wd * r
    (1 - wd * r with fixed_decay) before the step. Follows `pytorch_optimizer.AdamP`
    (betas named b1, b2, lr named learning_rate), which adds a coupled decay to the
    gradient only after the step has been computed from it: with weight_decouple=False
    the decay changes nothing, here as there.

    Reference: Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown
    for Momentum Optimizers on Scale-invariant Weights", ICLR 2021.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_nonnegative("delta", delta)
    check_nonnegative("wd_ratio", wd_ratio)

    def init(params):
        return initial_state(AdampState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adamp", state, AdampState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        step_size = lr_t / (1.0 - b1**t)
        correction2 = jnp.sqrt(1.0 - b2**t)

        def leaf(g, m, v, p):
            dtype = p.dtype
            m = lerp(m, g, 1.0 - b1)
            v = b2 * v + (1.0 - b2) * (g * g)
            inverse = (1.0 / (jnp.sqrt(v) + eps)) * correction2.astype(dtype)
            perturb = (lerp(m, g, 1.0 - b1) if nesterov else m) * inverse
            ratio = 1.0
            if p.ndim > 1:
                perturb, ratio = projected(p, g, perturb, delta, wd_ratio, eps)
            lr = jnp.asarray(lr_t, dtype)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay, ratio)
            return decay - jnp.asarray(step_size, dtype) * perturb, m, v

        updates, mu, nu = map_leaves(leaf, grads, state.mu, state.nu, params)
        return updates, advanced(state, count=t, mu=mu, nu=nu)

    return Optimizer(init, update)


class SgdpState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    momentum: Any  # the momentum buffer b


def sgdp(
    learning_rate: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""SGDP (Heo et al., 2021): SGD with momentum whose step on a scale-invariant weight
    loses its radial component, as `adamp`'s does.

    For step t with gradient g_t:

        b_t     = momentum * b_{t-1} + (1 - dampening) * g_t
        p_t     = b_t    (momentum * b_t + g_t with nesterov=True)
        p_t     = p_t - w_hat <w_hat, p_t>       (as in `adamp`, on scale-invariant
                                                  leaves, with r = wd_ratio there)
        theta_t = theta_{t-1} - lr_t * p_t

    Decoupled decay (the default) multiplies theta_{t-1} by
    1 - lr_t * wd * r / (1 - momentum) (1 - wd * r / (1 - momentum) with fixed_decay)
    before the step. Follows `pytorch_optimizer.SGDP` (lr named learning_rate), with
    which, as with AdamP, weight_decouple=False leaves the step undecayed.

    Reference: Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown
    for Momentum Optimizers on Scale-invariant Weights", ICLR 2021.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_nonnegative("dampening", dampening)
    check_decay(weight_decay)
    check_nonnegative("delta", delta)
    check_nonnegative("wd_ratio", wd_ratio)
    check_nonnegative("eps", eps)

    def init(params):
        return initial_state(SgdpState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("sgdp", state, SgdpState, grads, params)

        def leaf(g, b, p):
            dtype = p.dtype
            b = momentum * b + (1.0 - dampening) * g
            perturb = momentum * b + g if nesterov else b
            ratio = 1.0
            if p.ndim > 1:
                perturb, ratio = projected(p, g, perturb, delta, wd_ratio, eps)
            lr = learning_rate_at(learning_rate, state.count, dtype)
            decay = decoupled_decay(
                p, lr, weight_decay, weight_decouple, fixed_decay, ratio / (1.0 - momentum)
            )
            return decay - lr * perturb, b

        updates, buffers = map_leaves(leaf, grads, state.momentum, params)
        return updates, advanced(state, count=increment(state.count), momentum=buffers)

    return Optimizer(init, update)


REGISTRY = {
    "adamp": OptimizerSpec(
        adamp,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "eps": EPS,
            "delta": DELTA,
            "wd_ratio": WD_RATIO,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdamP",
    ),
    "sgdp": OptimizerSpec(
        sgdp,
        LR_GRID,
        search_space={
            # momentum reaches 0, the reference's default (plain SGD).
            "momentum": Range(0.0, 0.999, "one_minus_log"),
            "delta": DELTA,
            "wd_ratio": WD_RATIO,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 SGDP",
    ),
}
__all__ = ["AdampState", "SgdpState", "adamp", "sgdp"]
