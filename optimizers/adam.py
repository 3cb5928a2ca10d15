"""Adam: adaptive moment estimation."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    descend,
    increment,
    zeros_like,
)


class AdamState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, in mu_dtype when given
    nu: Any  # second moment v


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Adam (Kingma & Ba, 2015), optionally with Nesterov momentum (NAdam, Dozat 2016).

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        mhat_t  = m_t / (1 - b1^t)
        mhat_t  = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)   (nesterov=True)
        vhat_t  = v_t / (1 - b2^t)
        theta_t = theta_{t-1} - lr_t * mhat_t / (sqrt(vhat_t + eps_root) + eps)

    eps sits outside the square root, eps_root inside, as in `optax.adam`, whose
    arguments and defaults this factory shares.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("eps_root", eps_root)

    def init(params):
        return AdamState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params, mu_dtype),
            nu=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, grads, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * g**2 + b2 * v, grads, state.nu)
        # Bias corrections are computed in the counter's float type, then cast to
        # the moment's dtype, so that b^t does not round to 1 in low precision.
        correction1, correction2 = 1 - b1**t, 1 - b2**t
        if nesterov:
            correction1_next = 1 - b1 ** increment(t)
            mhat = jax.tree.map(
                lambda m, g: (
                    b1 * (m / correction1_next.astype(m.dtype))
                    + (1 - b1) * (g / correction1.astype(g.dtype))
                ),
                mu,
                grads,
            )
        else:
            mhat = jax.tree.map(lambda m: m / correction1.astype(m.dtype), mu)
        vhat = jax.tree.map(lambda v: v / correction2.astype(v.dtype), nu)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mhat, vhat)
        new_state = AdamState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)
