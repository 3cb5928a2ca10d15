"""D-Adaptation for AdamW: Adam whose step size estimates the distance to the solution."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    increment,
    lowest_dtype,
    require_params,
    value_at,
    vdot,
    zeros_like,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, OptimizerSpec, log_grid


class DadaptAdamwState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # m: moving average of d_k-scaled gradients
    exp_avg_sq: Any  # v: moving average of squared gradients
    grad_sum: Any  # s: sqrt(b2)-discounted sum of d_k-scaled gradients
    estim_lr: jax.Array  # d_k, the distance estimate
    numerator_weighted: jax.Array  # r_k, the numerator of the next estimate


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    weight_decay: float = 0.0,
) -> Optimizer:
    r"""D-Adapted AdamW (Defazio & Mishchenko, 2023): the learning rate is d_k * lr_k, with
    d_k a running lower bound on the distance from the start to the solution.

    For step k = 1, 2, ... with gradient g_k, (b1, b2) = betas, sb2 = sqrt(b2), d_0 = estim_lr0:

        dlr_k   = d_{k-1} * lr_k * sqrt(1 - b2^k) / (1 - b1^k)
        r_k     = sb2 * r_{k-1} + (1 - sb2) * dlr_k * <g_k, s_{k-1} / (sqrt(v_{k-1}) + eps)>
        m_k     = b1 * m_{k-1} + (1 - b1) * dlr_k * g_k
        v_k     = b2 * v_{k-1} + (1 - b2) * g_k^2
        s_k     = sb2 * s_{k-1} + (1 - sb2) * dlr_k * g_k
        d_k     = max(d_{k-1}, r_k / ((1 - sb2) * ||s_k||_1))
        theta_k = theta_{k-1} - m_k / (sqrt(v_k) + eps) - wd * dlr_k * theta_{k-1}

    <.,.> and ||.||_1 run over all leaves together. lr_k (1 in the paper) scales the
    adapted step. Same arguments and defaults as `optax.contrib.dadapt_adamw`.

    Reference: Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation",
    ICML 2023.
    """
    beta1, beta2 = betas
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("betas", beta1)
    check_unit_interval("betas", beta2)
    check_nonnegative("eps", eps)
    check_nonnegative("estim_lr0", estim_lr0)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        dtype = lowest_dtype(params)
        return DadaptAdamwState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            grad_sum=zeros_like(params),
            estim_lr=jnp.asarray(estim_lr0, dtype),
            numerator_weighted=jnp.zeros([], dtype),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("dadapt_adamw", params)
        check_same_tree(grads, params, "grads", "params")
        sb2 = beta2**0.5
        k = increment(state.count)
        bias_correction = ((1 - beta2**k) ** 0.5) / (1 - beta1**k)
        dlr = state.estim_lr * value_at(learning_rate, state.count) * bias_correction
        dlr = dlr.astype(state.numerator_weighted.dtype)
        # <g_k, s_{k-1} / (sqrt(v_{k-1}) + eps)>, with the state before this step.
        weighted_sum = jax.tree.map(
            lambda s, v: s / (jnp.sqrt(v) + eps), state.grad_sum, state.exp_avg_sq
        )
        inner = vdot(grads, weighted_sum)
        exp_avg = jax.tree.map(lambda m, g: beta1 * m + (1 - beta1) * dlr * g, state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(
            lambda v, g: beta2 * v + (1 - beta2) * g * g, state.exp_avg_sq, grads
        )
        grad_sum = jax.tree.map(lambda s, g: sb2 * s + (1 - sb2) * dlr * g, state.grad_sum, grads)
        grad_sum_l1 = sum(jnp.sum(jnp.abs(s)) for s in jax.tree.leaves(grad_sum))
        numerator = sb2 * state.numerator_weighted + (1 - sb2) * dlr * inner
        estim_lr = jnp.maximum(state.estim_lr, numerator / ((1 - sb2) * grad_sum_l1))
        updates = jax.tree.map(
            lambda m, v, p: -weight_decay * dlr * p - m / (jnp.sqrt(v) + eps),
            exp_avg,
            exp_avg_sq,
            params,
        )
        new_state = DadaptAdamwState(
            count=k,
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            grad_sum=grad_sum,
            estim_lr=estim_lr.astype(state.estim_lr.dtype),
            numerator_weighted=numerator.astype(state.numerator_weighted.dtype),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # Learning-rate free: lr = 1 in the paper; the grid brackets it by 10x either way.
    "dadapt_adamw": OptimizerSpec(
        dadapt_adamw,
        log_grid(0.1, 10.0),
        search_space={"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 dadapt_adamw",
    ),
}
__all__ = ["DadaptAdamwState", "dadapt_adamw"]
