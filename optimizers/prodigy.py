"""Prodigy: D-Adaptation with the distance estimate weighted towards recent steps."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    copy_tree,
    increment,
    lowest_dtype,
    require_params,
    value_at,
    vdot,
    zeros_like,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range, log_grid


class ProdigyState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # m: moving average of d-scaled gradients
    exp_avg_sq: Any  # v: moving average of squared d-scaled gradients
    grad_sum: Any  # s: b3-discounted sum of d-scaled gradients
    params0: Any  # theta_0
    estim_lr: jax.Array  # d_k, the distance estimate
    numerator_weighted: jax.Array  # r_k, the numerator of the next estimate


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    safeguard_warmup: bool = False,
) -> Optimizer:
    r"""Prodigy (Mishchenko & Defazio, 2023): Adam whose step size d_k * lr_k adapts to the
    distance from the start to the solution, estimated with growing weights d_k.

    For step k = 1, 2, ... with gradient g_k, (b1, b2) = betas, b3 = beta3 (sqrt(b2) by
    default), d_0 = estim_lr0 and c = estim_lr_coef:

        dlr_k   = d_{k-1} * lr_k * sqrt(1 - b2^k) / (1 - b1^k)
        r_k     = b3 * r_{k-1} + (d_{k-1} / d_0) * dlr_k * <g_k, theta_0 - theta_{k-1}>
        m_k     = b1 * m_{k-1} + (1 - b1) * d_{k-1} * g_k
        v_k     = b2 * v_{k-1} + (1 - b2) * (d_{k-1} * g_k)^2
        s_k     = b3 * s_{k-1} + (w_k / d_0) * d_{k-1} * g_k,   w_k = dlr_k (d_{k-1} with
                                                                 safeguard_warmup=True)
        d_k     = max(d_{k-1}, c * r_k / ||s_k||_1)
        theta_k = theta_{k-1} - dlr_k * (m_k / (sqrt(v_k) + d_k * eps) + wd * theta_{k-1})

    <.,.> and ||.||_1 run over all leaves together. lr_k (1 in the paper) scales the
    adapted step. Same arguments and defaults as `optax.contrib.prodigy`.

    Reference: Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024 (arXiv:2306.06101).
    """
    beta1, beta2 = betas
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("betas", beta1)
    check_unit_interval("betas", beta2)
    beta3 = beta2**0.5 if beta3 is None else beta3
    check_unit_interval("beta3", beta3)
    check_nonnegative("eps", eps)
    check_nonnegative("estim_lr0", estim_lr0)
    check_nonnegative("estim_lr_coef", estim_lr_coef)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        dtype = lowest_dtype(params)
        return ProdigyState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            grad_sum=zeros_like(params),
            params0=copy_tree(params),
            estim_lr=jnp.asarray(estim_lr0, dtype),
            numerator_weighted=jnp.zeros([], dtype),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("prodigy", params)
        check_same_tree(grads, params, "grads", "params")
        d = state.estim_lr
        k = increment(state.count)
        bias_correction = ((1 - beta2**k) ** 0.5) / (1 - beta1**k)
        dlr = jnp.asarray(d * value_at(learning_rate, state.count) * bias_correction, d.dtype)
        dg = jax.tree.map(lambda g: d * g, grads)
        travelled = jax.tree.map(lambda p0, p: p0 - p, state.params0, params)
        inner = vdot(grads, travelled)
        exp_avg = jax.tree.map(lambda m, x: beta1 * m + (1 - beta1) * x, state.exp_avg, dg)
        exp_avg_sq = jax.tree.map(
            lambda v, x: beta2 * v + (1 - beta2) * x * x, state.exp_avg_sq, dg
        )
        weight = d if safeguard_warmup else dlr
        grad_sum = jax.tree.map(lambda s, x: beta3 * s + weight * x / estim_lr0, state.grad_sum, dg)
        numerator = beta3 * state.numerator_weighted + (d / estim_lr0) * dlr * inner
        grad_sum_l1 = sum(jnp.sum(jnp.abs(s)) for s in jax.tree.leaves(grad_sum))
        estim_lr = jnp.maximum(d, estim_lr_coef * numerator / grad_sum_l1)
        updates = jax.tree.map(
            lambda m, v, p: -weight_decay * dlr * p - dlr * m / (jnp.sqrt(v) + estim_lr * eps),
            exp_avg,
            exp_avg_sq,
            params,
        )
        new_state = ProdigyState(
            count=k,
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            grad_sum=grad_sum,
            params0=state.params0,
            estim_lr=estim_lr.astype(d.dtype),
            numerator_weighted=numerator.astype(d.dtype),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # Learning-rate free: lr = 1 in the paper; the grid brackets it by 10x either way.
    # estim_lr_coef scales the estimated step (the paper's d_coef, its advice for tuning).
    "prodigy": OptimizerSpec(
        prodigy,
        log_grid(0.1, 10.0),
        search_space={"estim_lr_coef": Range(0.1, 10.0), "weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 prodigy",
    ),
}
__all__ = ["ProdigyState", "prodigy"]
