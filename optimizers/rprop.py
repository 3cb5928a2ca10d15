"""Rprop: resilient backpropagation, sign-based steps with adaptive sizes."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    full_like,
    zeros_like,
)
from optimizers.registry import LR_GRID, OptimizerSpec, Range


class RpropState(NamedTuple):
    step_sizes: Any  # per-coordinate step size eta_t
    previous_step: Any  # eta_{t-1} * sign(g_{t-1}), zeroed after a sign change


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> Optimizer:
    r"""Rprop (Riedmiller & Braun, 1993), the variant without weight backtracking.

    Per coordinate, with s_t = g_t * g_{t-1} (g_0 = 0) and eta_0 = learning_rate:

        eta_t   = eta_{t-1}                                            (s_t = 0)
        eta_t   = clip(eta_{t-1} * (eta_plus if s_t > 0 else eta_minus), min, max)
        p_t     = 0 if s_t < 0 else eta_t * sign(g_t)
        theta_t = theta_{t-1} - (0 if s_t < 0 else p_{t-1})

    As in `optax.rprop`, each step applies the *previous* step's size and sign, so the
    first update is zero. `learning_rate` is the initial step size, so it cannot be a
    schedule. Same arguments and defaults as `optax.rprop`.

    Reference: Riedmiller & Braun, "A direct adaptive method for faster backpropagation
    learning: the RPROP algorithm", IEEE ICNN 1993.
    """
    if callable(learning_rate):
        raise NotImplementedError("rprop's learning_rate is an initial step size, not a schedule")
    check_given("learning_rate", learning_rate)
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("eta_minus", eta_minus)
    check_nonnegative("eta_plus", eta_plus)
    check_nonnegative("min_step_size", min_step_size)
    check_nonnegative("max_step_size", max_step_size)

    def init(params):
        return RpropState(
            step_sizes=full_like(params, learning_rate),
            previous_step=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, RpropState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        agreement = jax.tree.map(lambda g, p: g * p, grads, state.previous_step)
        step_sizes = jax.tree.map(
            lambda s, eta: jnp.where(
                s == 0,
                eta,
                jnp.clip(eta * jnp.where(s > 0, eta_plus, eta_minus), min_step_size, max_step_size),
            ),
            agreement,
            state.step_sizes,
        )
        step = jax.tree.map(
            lambda s, g, eta: jnp.where(s < 0, jnp.zeros_like(g), eta * jnp.sign(g)),
            agreement,
            grads,
            step_sizes,
        )
        applied = jax.tree.map(
            lambda s, p: jnp.where(s < 0, jnp.zeros_like(p), p), agreement, state.previous_step
        )
        updates = jax.tree.map(lambda a: -1.0 * a, applied)
        return updates, RpropState(step_sizes=step_sizes, previous_step=step)

    return Optimizer(init, update)


REGISTRY = {
    # The factors that shrink (0.5) and grow (1.2) each step size.
    "rprop": OptimizerSpec(
        rprop,
        LR_GRID,
        optax_name="rprop",
        search_space={
            "eta_minus": Range(0.1, 0.9, "linear"),
            "eta_plus": Range(1.05, 2.0, "linear"),
        },
        default_learning_rate=1e-2,  # PyTorch
    ),
}
__all__ = ["RpropState", "rprop"]
