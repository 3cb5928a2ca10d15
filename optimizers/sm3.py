"""SM3: memory-efficient adaptive gradients with per-axis accumulators."""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    cast_like,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    descend,
    increment,
    state_dtype,
    zeros_like,
)
from optimizers.registry import MOMENTUM, OptimizerSpec, log_grid


class Sm3State(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules
    mu: Any  # per leaf, a list with one accumulator vector per axis (one scalar for a scalar)
    nu: Any  # momentum of the preconditioned gradient


def sm3(learning_rate: ScalarOrSchedule, momentum: float = 0.9) -> Optimizer:
    r"""SM3-II (Anil et al., 2019) with momentum, as `optax.sm3`.

    For a leaf of rank k with accumulators mu^(1..k), one vector per axis, and
    gradient g_t:

        a_t      = |g_t|^2 + min_r mu^(r)_{t-1}      (broadcast over the other axes)
        mu^(r)_t = max of a_t over all axes but r
        u_t      = g_t / sqrt(a_t + 1e-8)  where a_t > 0, else 0
        nu_t     = (1 - momentum) * u_t + momentum * nu_{t-1}
        theta_t  = theta_{t-1} - lr_t * nu_t

    A vector keeps one accumulator per coordinate (a_t = |g_t|^2 + a_{t-1}); a scalar
    keeps one number (optax's rule rejects scalar leaves; this one accepts them).

    Reference: Anil, Gupta, Koren & Singer, "Memory-Efficient Adaptive Optimization",
    NeurIPS 2019.
    """
    check_given("learning_rate", learning_rate)
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    eps = 1e-8  # fixed in optax.sm3

    def init(params):
        def accumulators(p):
            if p.ndim < 2:
                return [jnp.zeros_like(p, state_dtype(p.dtype))]
            return [jnp.zeros(p.shape[axis], state_dtype(p.dtype)) for axis in range(p.ndim)]

        mu = jax.tree.map(accumulators, params)
        return Sm3State(count=jnp.zeros([], jnp.int32), mu=mu, nu=zeros_like(params))

    def accumulate(g, mu):
        if g.ndim < 2:
            return abs_sq(g) + mu[0]
        expanded = [
            jnp.reshape(m, [1] * axis + [g.shape[axis]] + [1] * (g.ndim - axis - 1))
            for axis, m in enumerate(mu)
        ]
        return abs_sq(g) + functools.reduce(jnp.minimum, expanded)

    def cover(a):
        if a.ndim < 2:
            return [a]
        return [
            jnp.max(a, axis=[other for other in range(a.ndim) if other != axis])
            for axis in range(a.ndim)
        ]

    def update(grads, state, params=None, **extra):
        check_state(state, Sm3State)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        accum = jax.tree.map(accumulate, grads, state.mu)
        inv_sqrt = jax.tree.map(lambda a: jnp.where(a > 0, jax.lax.rsqrt(a + eps), 0.0), accum)
        preconditioned = jax.tree.map(lambda g, r: g * r, grads, inv_sqrt)
        nu = jax.tree.map(lambda u, n: (1 - momentum) * u + momentum * n, preconditioned, state.nu)
        mu = cast_like(jax.tree.map(cover, accum), state.mu)
        new_state = Sm3State(count=increment(state.count), mu=mu, nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, nu), new_state

    return Optimizer(init, update)


REGISTRY = {
    "sm3": OptimizerSpec(
        sm3,
        log_grid(1e-3, 10.0),
        optax_name="sm3",
        search_space={"momentum": MOMENTUM},
        default_learning_rate=1e-2,  # PyTorch's Adagrad, which SM3 approximates
    ),
}
__all__ = ["Sm3State", "sm3"]
