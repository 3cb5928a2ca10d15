"""RMSProp, plain or centered, with optional heavy-ball or Nesterov momentum."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    descend,
    full_like,
    increment,
    update_moment,
    zeros_like,
)
from optimizers.registry import EPS, LR_GRID, MOMENTUM, OptimizerSpec


class RmspropState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m (centered=True), else ()
    nu: Any  # second moment v
    trace: Any  # momentum buffer of the scaled updates, () without momentum


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> Optimizer:
    r"""RMSProp (Tieleman & Hinton, 2012); centered as in Graves (2013).

    For step t with gradient g_t:

        v_t  = decay * v_{t-1} + (1 - decay) * |g_t|^2      (v_0 = initial_scale)
        m_t  = decay * m_{t-1} + (1 - decay) * g_t          (centered=True; m_0 = 0)
        vhat = v_t / (1 - decay^t), mhat = m_t / (1 - decay^t)   (bias_correction=True;
                                                              else vhat = v_t, mhat = m_t)
        s_t  = vhat - |mhat|^2 (centered)   or   vhat   (not centered)
        d_t  = g_t / sqrt(s_t + eps)   (eps_in_sqrt=True)   or   g_t / (sqrt(s_t) + eps)
        u_t  = -lr_t * d_t

    With `momentum` mu the scaled steps are accumulated after the learning rate,
    as `optax.rmsprop` does:

        b_t     = u_t + mu * b_{t-1}                       (b_0 = 0)
        theta_t = theta_{t-1} + b_t                        (heavy ball)
        theta_t = theta_{t-1} + u_t + mu * b_t             (nesterov=True)

    Same arguments and defaults as `optax.rmsprop`.

    References: Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural
    Networks for Machine Learning, 2012; Graves, "Generating Sequences With
    Recurrent Neural Networks", arXiv:1308.0850, 2013.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("decay", decay)
    check_nonnegative("eps", eps)
    check_nonnegative("initial_scale", initial_scale)
    if momentum is not None:
        check_unit_interval("momentum", momentum)

    def init(params):
        return RmspropState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params) if centered else (),
            nu=full_like(params, initial_scale),
            trace=zeros_like(params) if momentum is not None else (),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, RmspropState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        nu = update_moment(grads, state.nu, decay, 2)
        vhat = nu
        if bias_correction:
            correction = 1 - decay**t  # in the counter's float type, cast per leaf
            vhat = jax.tree.map(lambda v: v / correction.astype(v.dtype), nu)
        if centered:
            mu = update_moment(grads, state.mu, decay, 1)
            mhat = mu
            if bias_correction:
                mhat = jax.tree.map(lambda m: m / correction.astype(m.dtype), mu)
            s = jax.tree.map(lambda v, m: v - abs_sq(m), vhat, mhat)
            mu = cast_like(mu, state.mu)
        else:
            mu, s = (), vhat
        if eps_in_sqrt:
            direction = jax.tree.map(lambda s, g: jax.lax.rsqrt(s + eps) * g, s, grads)
        else:
            direction = jax.tree.map(lambda s, g: 1 / (jnp.sqrt(s) + eps) * g, s, grads)
        updates = descend(learning_rate, state.count, direction)
        trace = ()
        if momentum is not None:
            trace = jax.tree.map(lambda u, b: u + momentum * b, updates, state.trace)
            if nesterov:
                updates = jax.tree.map(lambda u, b: u + momentum * b, updates, trace)
            else:
                updates = trace
            trace = cast_like(trace, state.trace)
        new_state = RmspropState(count=t, mu=mu, nu=cast_like(nu, state.nu), trace=trace)
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    "rmsprop": OptimizerSpec(
        rmsprop,
        LR_GRID,
        optax_name="rmsprop",
        search_space={"decay": MOMENTUM, "eps": EPS},
        default_learning_rate=1e-2,  # PyTorch
    ),
}
__all__ = ["RmspropState", "rmsprop"]
