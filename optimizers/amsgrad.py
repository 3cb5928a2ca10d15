"""AMSGrad: Adam with a non-decreasing second-moment estimate."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_same_tree,
    check_state,
    descend,
    increment,
    update_moment,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, OptimizerSpec


class AmsgradState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, in mu_dtype when given
    nu: Any  # second moment v
    nu_max: Any  # running maximum of the (bias-corrected) second moment


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> Optimizer:
    r"""AMSGrad (Reddi, Kale & Kumar, 2018).

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * |g_t|^2
        mhat_t  = m_t / (1 - b1^t)            (m_t when bias_correction_mu=False)
        vhat_t  = v_t / (1 - b2^t)            (v_t when bias_correction_nu=False)
        vmax_t  = max(vmax_{t-1}, vhat_t)     (vmax_0 = 0)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(vmax_t + eps_root) + eps)

    The maximum is taken over the bias-corrected estimate, as in `optax.amsgrad`,
    whose arguments and defaults this factory shares.

    Reference: Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)

    def init(params):
        return AmsgradState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params, mu_dtype),
            nu=zeros_like(params),
            nu_max=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AmsgradState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        correction1, correction2 = 1 - b1**t, 1 - b2**t  # counter's float type, cast per leaf
        mhat, vhat = mu, nu
        if bias_correction_mu:
            mhat = jax.tree.map(lambda m: m / correction1.astype(m.dtype), mu)
        if bias_correction_nu:
            vhat = jax.tree.map(lambda v: v / correction2.astype(v.dtype), nu)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, vhat)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mhat, nu_max)
        new_state = AmsgradState(
            count=t,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            nu_max=cast_like(nu_max, state.nu_max),
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "amsgrad": OptimizerSpec(
        amsgrad,
        LR_GRID,
        optax_name="amsgrad",
        search_space=ADAM_SPACE,
        default_learning_rate=1e-3,  # PyTorch's Adam, amsgrad=True
    ),
}
__all__ = ["AmsgradState", "amsgrad"]
