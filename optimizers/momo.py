"""MoMo: momentum with the Polyak-type step size of a model of the loss (SGD and Adam forms)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    increment,
    lowest_dtype,
    require_params,
    squared_norm,
    value_at,
    vdot,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, log_grid

# Below this squared momentum norm the model step is 0, as in optax (float64's eps).
TINY = np.finfo(np.float64).eps


class MomoState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # d: moving average of the gradients
    barf: jax.Array  # moving average of the loss values
    gamma: jax.Array  # moving average of <g_k, theta_k>
    lb: jax.Array  # lower bound on the loss, fixed or adapted


def _check_momo(learning_rate, weight_decay):
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("weight_decay", weight_decay)


def _lower_bound_before(adapt, state, cap, scale, correction, lower_bound):
    """The bound this step uses: lowered to max(cap / (2 * scale), f_*) where the model's
    value `cap` says the stored one is too high (adapt_lower_bound=True), else kept."""
    if not adapt:
        return state.lb
    lowered = jnp.maximum(cap / (2 * correction * scale), lower_bound)
    return jnp.where(cap < scale * correction * state.lb, lowered, state.lb)


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> Optimizer:
    r"""MoMo (Schaipp et al., 2023): SGD with momentum whose step size is capped by the
    Polyak step of a momentum model of the loss.

    For step k = 0, 1, ... with loss value f_k, gradient g_k, lr alpha_k, weight decay wd
    and b = beta (b = 0 at k = 0, so the averages start at the first values):

        fbar_k  = b * fbar_{k-1} + (1 - b) * f_k
        d_k     = b * d_{k-1} + (1 - b) * g_k
        gam_k   = b * gam_{k-1} + (1 - b) * <g_k, theta_k>
        h_k     = (1 + alpha_k wd) (fbar_k - f_* - gam_k) + <d_k, theta_k>
        tau_k   = min(alpha_k, max(h_k, 0) / ||d_k||^2)        (0 if ||d_k||^2 <= 2.2e-16)
        theta_{k+1} = theta_k - alpha_k wd / (1 + alpha_k wd) * theta_k - tau_k * d_k

    f_* is `lower_bound`; with adapt_lower_bound=True it is raised to the model's
    estimate max(fbar_k + <d_k, theta_k> - gam_k - tau_k ||d_k||^2 / 2, lower_bound)
    after each step, and lowered to max(h_k / (2 (1 + alpha_k wd)), lower_bound) before
    a step whose model value h_k (taken with f_* = 0) falls below the current bound.
    The update needs the loss: call `update(grads, state, params, value=f_k)`. Same
    arguments and defaults as `optax.contrib.momo`.

    Reference: Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates",
    ICML 2024 (arXiv:2305.07583).
    """
    _check_momo(learning_rate, weight_decay)
    check_unit_interval("beta", beta)

    def init(params):
        dtype = lowest_dtype(params)
        return MomoState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(lower_bound, dtype),
        )

    def update(grads, state, params=None, *, value, **extra):
        del extra
        require_params("momo", params)
        check_same_tree(grads, params, "grads", "params")
        b = jnp.where(state.count == 0, 0.0, beta)
        barf = b * state.barf + (1 - b) * jnp.asarray(value, state.barf.dtype)
        exp_avg = jax.tree.map(lambda d, g: b * d + (1 - b) * g, state.exp_avg, grads)
        gamma = b * state.gamma + (1 - b) * vdot(grads, params)
        norm_sq = squared_norm(exp_avg)
        inner = vdot(exp_avg, params)
        alpha = value_at(learning_rate, state.count)
        scale = 1 + alpha * weight_decay
        cap = scale * (barf - gamma) + inner
        lb = _lower_bound_before(adapt_lower_bound, state, cap, scale, 1, lower_bound)
        polyak = jnp.maximum(scale * (barf - lb - gamma) + inner, 0.0) / norm_sq
        tau = jnp.minimum(alpha, jnp.where(norm_sq <= TINY, 0.0, polyak))
        updates = jax.tree.map(
            lambda d, p: -(alpha * weight_decay) / scale * p - tau * d, exp_avg, params
        )
        if adapt_lower_bound:
            lb = jnp.maximum((barf + inner - gamma) - (1 / 2) * tau * norm_sq, lower_bound)
        else:
            lb = state.lb
        dtype = state.barf.dtype
        return updates, MomoState(
            count=increment(state.count),
            exp_avg=exp_avg,
            barf=barf.astype(dtype),
            gamma=gamma.astype(dtype),
            lb=jnp.asarray(lb, dtype),
        )

    return Optimizer(init, update)


class MomoAdamState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # d: moving average of the gradients
    exp_avg_sq: Any  # v: moving average of the squared gradients
    barf: jax.Array  # moving average of the loss values
    gamma: jax.Array  # moving average of <g_k, theta_k>
    lb: jax.Array  # lower bound on the loss, fixed or adapted


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> Optimizer:
    r"""MoMo-Adam (Schaipp et al., 2023): Adam whose step size is capped by the Polyak step
    of a momentum model of the loss, in Adam's preconditioned norm.

    For step k = 1, 2, ... with loss value f_k, gradient g_k, lr alpha_k and weight decay wd:

        fbar_k  = b1 * fbar_{k-1} + (1 - b1) * f_k
        d_k     = b1 * d_{k-1} + (1 - b1) * g_k
        v_k     = b2 * v_{k-1} + (1 - b2) * g_k^2
        D_k     = eps + sqrt(v_k / (1 - b2^k))                  (element-wise)
        gam_k   = b1 * gam_{k-1} + (1 - b1) * <g_k, theta_k>
        c_k     = 1 - b1^k
        h_k     = (1 + alpha_k wd) (fbar_k - c_k f_* - gam_k) + <d_k, theta_k>
        tau_k   = min(alpha_k / c_k, max(h_k, 0) / <d_k, d_k / D_k>)   (0 if that is <= 2.2e-16)
        theta_{k+1} = theta_k - alpha_k wd / (1 + alpha_k wd) * theta_k - tau_k * d_k / D_k

    f_* is `lower_bound`, adapted as in `momo` when adapt_lower_bound=True. The update
    needs the loss: call `update(grads, state, params, value=f_k)`. Same arguments and
    defaults as `optax.contrib.momo_adam`.

    Reference: Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates",
    ICML 2024 (arXiv:2305.07583).
    """
    _check_momo(learning_rate, weight_decay)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)

    def init(params):
        dtype = lowest_dtype(params)
        return MomoAdamState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(lower_bound, dtype),
        )

    def update(grads, state, params=None, *, value, **extra):
        del extra
        require_params("momo_adam", params)
        check_same_tree(grads, params, "grads", "params")
        dtype = state.barf.dtype
        k = increment(state.count)
        barf = b1 * state.barf + (1 - b1) * jnp.asarray(value, dtype)
        exp_avg = jax.tree.map(lambda d, g: b1 * d + (1 - b1) * g, state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.exp_avg_sq, grads)
        correction2 = jnp.asarray(1 - b2**k, dtype)
        precond = jax.tree.map(lambda v: eps + jnp.sqrt(v / correction2), exp_avg_sq)
        norm_sq = vdot(exp_avg, jax.tree.map(lambda d, D: d / D, exp_avg, precond))
        gamma = b1 * state.gamma + (1 - b1) * vdot(grads, params)
        inner = vdot(exp_avg, params)
        alpha = value_at(learning_rate, state.count)
        correction1 = jnp.asarray(1 - b1**k, dtype)
        scale = 1 + alpha * weight_decay
        cap = scale * (barf - gamma) + inner
        lb = _lower_bound_before(adapt_lower_bound, state, cap, scale, correction1, lower_bound)
        polyak = jnp.maximum(scale * (barf - correction1 * lb - gamma) + inner, 0.0) / norm_sq
        tau = jnp.minimum(alpha / correction1, jnp.where(norm_sq <= TINY, 0.0, polyak))
        updates = jax.tree.map(
            lambda d, D, p: -(alpha * weight_decay) / scale * p - tau * d / D,
            exp_avg,
            precond,
            params,
        )
        if adapt_lower_bound:
            lb = ((barf + inner - gamma) - (1 / 2) * tau * norm_sq) / correction1
            lb = jnp.maximum(lb, lower_bound)
        else:
            lb = state.lb
        return updates, MomoAdamState(
            count=k,
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            barf=barf.astype(dtype),
            gamma=gamma.astype(dtype),
            lb=jnp.asarray(lb, dtype),
        )

    return Optimizer(init, update)


REGISTRY = {
    # The step size is the Polyak step, capped by the learning rate: the paper finds
    # MoMo stable for caps over several decades, 1 for SGD-like and 1e-2 for Adam-like.
    "momo": OptimizerSpec(
        momo,
        log_grid(1e-2, 1e2, per_decade=1),
        needs_loss=True,
        search_space={"beta": MOMENTUM, "weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 momo",
    ),
    "momo_adam": OptimizerSpec(
        momo_adam,
        log_grid(1e-4, 1.0),
        needs_loss=True,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 momo_adam",
    ),
}
__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam"]
