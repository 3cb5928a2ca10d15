"""Stochastic gradient descent with the (capped) Polyak step size."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    require_loss,
)
from optimizers.registry import OptimizerSpec, Range, log_grid

VARIANTS = ("sps", "sps+")


class PolyakSgdState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds a `scaling` schedule


def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> Optimizer:
    r"""SGD with the stochastic Polyak step size, capped at `max_learning_rate`.

    For step t with loss value f_t = f(theta_{t-1}), gradient g_t and scaling c_t:

        u_t     = c_t * g_t
        gap_t   = f_t - f_min                (max(f_t - f_min, 0) for variant="sps+")
        step_t  = min(gap_t / (||u_t||^2 + eps), max_learning_rate)
        step_t  = 0                          where ||u_t||^2 + eps <= 2.2e-16
        theta_t = theta_{t-1} - step_t * u_t

    ||.|| is the 2-norm over all leaves together. `scaling` (a number or a schedule)
    is the learning rate of the plain SGD step the Polyak step then rescales, as in
    `optax.polyak_sgd`, whose arguments and defaults this factory shares. The update
    needs the loss value: call `update(grads, state, params, value=f_t)`.

    References: Polyak, "Introduction to Optimization", 1987;
    Loizou et al., "Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate
    for Fast Convergence", AISTATS 2021.
    """
    check_nonnegative("max_learning_rate", max_learning_rate)
    check_nonnegative("scaling", scaling)
    check_nonnegative("eps", eps)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")

    def init(params):
        del params
        return PolyakSgdState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, *, value=None, **extra):
        check_state(state, PolyakSgdState)
        del extra
        require_loss("polyak_sgd", value=value)
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        sgd_step = descend(scaling, state.count, grads)  # -u_t
        squared_norm = sum(jnp.sum(abs_sq(u)) for u in jax.tree.leaves(sgd_step))
        gap = jnp.asarray(value - f_min).astype(squared_norm.dtype)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        step = jnp.where(
            squared_norm + eps <= jnp.finfo(float).eps,
            0.0,
            jnp.minimum(gap / (squared_norm + eps), max_learning_rate),
        )
        updates = jax.tree.map(lambda u: step.astype(u.dtype) * u, sgd_step)
        return updates, PolyakSgdState(count=increment(state.count))

    return Optimizer(init, update)


def polyak_sgd_by_scaling(learning_rate, **hparams):
    """polyak_sgd with `scaling`, the learning rate of its inner SGD step, as learning_rate.

    optax.polyak_sgd has no argument named learning_rate; the benchmark sweeps this one.
    """
    check_nonnegative("learning_rate", learning_rate)
    return polyak_sgd(scaling=learning_rate, **hparams)


REGISTRY = {
    # max_learning_rate caps the Polyak step (1 by default).
    "polyak_sgd": OptimizerSpec(
        polyak_sgd_by_scaling,
        log_grid(1e-2, 10.0),
        optax_name="polyak_sgd",
        needs_value_fn=True,
        search_space={"max_learning_rate": Range(1e-2, 1e2)},
        default_learning_rate=1.0,  # optax.polyak_sgd's default scaling
    ),
}
__all__ = ["PolyakSgdState", "polyak_sgd", "polyak_sgd_by_scaling"]
