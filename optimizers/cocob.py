"""COCOB-Backprop: learning-rate-free descent by continuous coin betting."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    copy_tree,
    descend,
    increment,
    require_params,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range, log_grid


class CocobState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules
    init_particles: Any  # theta_0
    cumulative_gradients: Any  # C = -sum of the (scaled) gradients
    scale: Any  # L = largest |gradient| seen, from eps
    subgradients: Any  # G = sum of |gradient|
    reward: Any  # R = wealth won by the bets so far, >= 0


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha: float = 100.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""COCOB-Backprop (Orabona & Tommasi, 2017): each coordinate bets its wealth on the
    sign of the negative gradient.

    For step t with gradient g_t, c_t = lr_t * (g_t + wd * theta_{t-1}), per coordinate,
    from L_0 = eps, G_0 = R_0 = C_0 = 0:

        L_t     = max(L_{t-1}, |c_t|)
        G_t     = G_{t-1} + |c_t|
        R_t     = max(R_{t-1} - c_t * (theta_{t-1} - theta_0), 0)
        C_t     = C_{t-1} - c_t
        theta_t = theta_0 + C_t / (L_t * max(G_t + L_t, alpha * L_t)) * (L_t + R_t)

    No learning rate is needed (lr = 1); lr_t only rescales the gradients, and is
    applied before the bet, as in `optax.contrib.cocob`, whose arguments and defaults
    this factory shares. `mask` selects the leaves that decay.

    Reference: Orabona & Tommasi, "Training Deep Networks without Learning Rates Through
    Coin Betting", NeurIPS 2017.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("alpha", alpha)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return CocobState(
            count=jnp.zeros([], jnp.int32),
            init_particles=copy_tree(params),
            cumulative_gradients=zeros_like(params),
            scale=jax.tree.map(lambda p: eps * jnp.ones_like(p), params),
            subgradients=zeros_like(params),
            reward=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("cocob", params)
        check_same_tree(grads, params, "grads", "params")
        grads = with_weight_decay(grads, params, weight_decay, state.count, mask)
        # descend gives -lr_t * g; the bet is on c_t = +lr_t * g.
        c = jax.tree.map(jnp.negative, descend(learning_rate, state.count, grads))
        scale = jax.tree.map(lambda L, c: jnp.maximum(L, jnp.abs(c)), state.scale, c)
        subgradients = jax.tree.map(lambda G, c: G + jnp.abs(c), state.subgradients, c)
        reward = jax.tree.map(
            lambda R, c, p, p0: jnp.maximum(R - c * (p - p0), 0),
            state.reward,
            c,
            params,
            state.init_particles,
        )
        cumulative = jax.tree.map(lambda C, c: C - c, state.cumulative_gradients, c)
        updates = jax.tree.map(
            lambda p, p0, C, L, G, R: -p + (p0 + C / (L * jnp.maximum(G + L, alpha * L)) * (L + R)),
            params,
            state.init_particles,
            cumulative,
            scale,
            subgradients,
            reward,
        )
        return updates, CocobState(
            count=increment(state.count),
            init_particles=state.init_particles,
            cumulative_gradients=cast_like(cumulative, state.cumulative_gradients),
            scale=cast_like(scale, state.scale),
            subgradients=cast_like(subgradients, state.subgradients),
            reward=cast_like(reward, state.reward),
        )

    return Optimizer(init, update)


REGISTRY = {
    # Learning-rate free: the paper uses none (lr = 1); the grid only checks that
    # rescaling the gradients by a few factors of 10 either way changes little.
    "cocob": OptimizerSpec(
        cocob,
        log_grid(1e-2, 1e2, per_decade=1),
        search_space={"alpha": Range(10.0, 1000.0), "weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 cocob",
    ),
}
__all__ = ["CocobState", "cocob"]
