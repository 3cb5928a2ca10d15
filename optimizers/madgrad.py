"""MADGRAD: momentumised, adaptive, dual-averaged gradient descent."""

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
    require_params,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import EPS, MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, log_grid


class MadgradState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    grad_sum_sq: Any  # nu: weighted sum of squared gradients
    s: Any  # weighted sum of gradients
    x0: Any  # theta_0, the dual-averaging anchor


def madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    eps: float = 1e-6,
) -> Optimizer:
    r"""MADGRAD (Defazio & Jelassi, 2021): dual averaging with AdaGrad's cube-root scaling.

    For step k = 0, 1, ... with gradient g_k + wd * theta_k and learning rate lr_k:

        lambda_k    = (lr_k + eps) * sqrt(k + 1)
        s_{k+1}     = s_k + lambda_k * g_k
        nu_{k+1}    = nu_k + lambda_k * g_k^2
        z_{k+1}     = theta_0 - s_{k+1} / (cbrt(nu_{k+1}) + eps)
        theta_{k+1} = (1 - momentum) * z_{k+1} + momentum * theta_k

    The momentum averages the iterates (c_k = 1 - momentum in the paper). Same
    arguments and defaults as `optax.contrib.madgrad`.

    Reference: Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized,
    Adaptive, Dual Averaged Gradient Method for Stochastic Optimization", JMLR 2022
    (arXiv:2101.11075).
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("eps", eps)

    def init(params):
        return MadgradState(
            count=jnp.zeros([], jnp.int32),
            grad_sum_sq=zeros_like(params),
            s=zeros_like(params),
            x0=copy_tree(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("madgrad", params)
        check_same_tree(grads, params, "grads", "params")
        grads = with_weight_decay(grads, params, weight_decay, state.count)
        # sqrt of the int32 count is float32, as in optax: with a Python-number learning
        # rate lambda_k is a float32 number whatever the params' dtype.
        lamb = (value_at(learning_rate, state.count) + eps) * jnp.sqrt(state.count + 1)
        grad_sum_sq = jax.tree.map(
            lambda nu, g: nu + (lamb * g**2).astype(g.dtype), state.grad_sum_sq, grads
        )
        s = jax.tree.map(lambda s, g: s + (lamb * g).astype(g.dtype), state.s, grads)
        z = jax.tree.map(lambda x0, s, nu: x0 - s / (jnp.cbrt(nu) + eps), state.x0, s, grad_sum_sq)
        new_params = jax.tree.map(lambda z, p: (1 - momentum) * z + momentum * p, z, params)
        updates = jax.tree.map(lambda new, p: new - p, new_params, params)
        return updates, MadgradState(
            count=increment(state.count), grad_sum_sq=grad_sum_sq, s=s, x0=state.x0
        )

    return Optimizer(init, update)


REGISTRY = {
    # The paper's best learning rates span 1e-4 (transformers) to 2.5e-2 (ImageNet).
    "madgrad": OptimizerSpec(
        madgrad,
        log_grid(1e-4, 1.0),
        search_space={"momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY_OR_OFF, "eps": EPS},
        default_learning_rate=1e-2,  # Defazio & Jelassi 2021
        reference="optax.contrib 0.2.8 madgrad",
    ),
}
__all__ = ["MadgradState", "madgrad"]
