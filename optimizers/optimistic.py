"""Optimistic gradient methods: extrapolation from the previous gradient, for games."""

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import AdamState, adam_direction, check_adam, init_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, OptimizerSpec, Range


class OptimisticState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    previous: Any  # the previous direction d_{t-1} (d_0 = d_1)


class OptimisticAdamState(NamedTuple):
    adam: AdamState  # state of the Adam direction
    optimistic: OptimisticState


def _extrapolate(direction, state, alpha, beta):
    """(alpha + beta) * d_t - beta * d_{t-1}, taking d_0 = d_1 on the first step."""
    first = state.count == 0

    def combine(d, previous):
        previous = jnp.where(first, d, previous)
        return (alpha + beta) * d - beta * previous

    extrapolated = jax.tree.map(combine, direction, state.previous)
    return extrapolated, OptimisticState(
        count=increment(state.count), previous=cast_like(direction, state.previous)
    )


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule, alpha: float = 1.0, beta: float = 1.0
) -> Optimizer:
    r"""Optimistic gradient descent (Popov 1980; Mokhtari et al., 2020).

    For step t with gradient g_t (g_0 = g_1):

        theta_t = theta_{t-1} - lr_t * ((alpha + beta) * g_t - beta * g_{t-1})

    alpha = beta = 1 gives the classic optimistic step 2 g_t - g_{t-1}. Same
    arguments and defaults as `optax.optimistic_gradient_descent`; alpha and beta are
    numbers, as optax's rule uses them.

    References: Popov, "A modification of the Arrow-Hurwicz method for search of saddle
    points", 1980; Mokhtari, Ozdaglar & Pattathil, "A Unified Analysis of Extra-gradient
    and Optimistic Gradient Methods for Saddle Point Problems", AISTATS 2020.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("alpha", alpha)
    check_nonnegative("beta", beta)

    def init(params):
        return OptimisticState(count=jnp.zeros([], jnp.int32), previous=zeros_like(params))

    def update(grads, state, params=None, **extra):
        check_state(state, OptimisticState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = _extrapolate(grads, state, alpha, beta)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    nesterov: bool = True,
) -> Optimizer:
    r"""Optimistic Adam (Daskalakis et al., 2018): the optimistic step on Adam's direction.

    With a_t the Adam direction mhat_t / (sqrt(vhat_t + eps_root) + eps) (Nesterov
    moment by default, see `adam`) and a_0 = a_1:

        theta_t = theta_{t-1} - lr_t * ((alpha + beta) * a_t - beta * a_{t-1})

    Same arguments and defaults as `optax.optimistic_adam_v2`.

    Reference: Daskalakis, Ilyas, Syrgkanis & Zeng, "Training GANs with Optimism",
    ICLR 2018.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_nonnegative("alpha", alpha)
    check_nonnegative("beta", beta)

    def init(params):
        optimistic = OptimisticState(count=jnp.zeros([], jnp.int32), previous=zeros_like(params))
        return OptimisticAdamState(adam=init_adam(params, mu_dtype), optimistic=optimistic)

    def update(grads, state, params=None, **extra):
        check_state(state, OptimisticAdamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, adam_state = adam_direction(grads, state.adam, b1, b2, eps, eps_root, nesterov)
        direction, optimistic = _extrapolate(direction, state.optimistic, alpha, beta)
        updates = descend(learning_rate, state.optimistic.count, direction)
        return updates, OptimisticAdamState(adam=adam_state, optimistic=optimistic)

    return Optimizer(init, update)


def optimistic_adam(
    learning_rate: float,
    optimism: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""The deprecated optax form of optimistic Adam, kept for comparison.

    With a_t the Adam direction and a_0 = a_1:

        theta_t = theta_{t-1} - ((lr + optimism) * a_t - optimism * a_{t-1})

    optimism defaults to lr. Unlike `optimistic_adam_v2`, the learning rate sits inside
    the extrapolation and cannot be a schedule. Same arguments and defaults as
    `optax.optimistic_adam`, which is deprecated in favour of `optax.optimistic_adam_v2`.

    Reference: Daskalakis, Ilyas, Syrgkanis & Zeng, "Training GANs with Optimism",
    ICLR 2018.
    """
    warnings.warn(
        "optimistic_adam is deprecated, use optimistic_adam_v2", DeprecationWarning, stacklevel=2
    )
    check_given("learning_rate", learning_rate)
    if callable(learning_rate):
        raise ValueError("optimistic_adam's learning_rate cannot be a schedule; see v2")
    check_nonnegative("learning_rate", learning_rate)
    optimism = learning_rate if optimism is None else optimism
    check_nonnegative("optimism", optimism)
    return optimistic_adam_v2(
        1.0,
        alpha=learning_rate,
        beta=optimism,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
    )


REGISTRY = {
    # alpha weighs the gradient, beta its change since the last step (1 and 1 by default).
    "optimistic_gradient_descent": OptimizerSpec(
        optimistic_gradient_descent,
        LR_GRID,
        optax_name="optimistic_gradient_descent",
        search_space={"alpha": Range(0.0, 2.0, "linear"), "beta": Range(0.0, 2.0, "linear")},
        default_learning_rate=1e-2,  # Keras's SGD, the rule it extrapolates
    ),
    # optimism defaults to the learning rate: its range is the learning rate's.
    "optimistic_adam": OptimizerSpec(
        optimistic_adam,
        LR_GRID,
        optax_name="optimistic_adam",
        search_space=ADAM_SPACE | {"optimism": Range(min(LR_GRID), max(LR_GRID))},
        default_learning_rate=1e-3,  # Adam's (Kingma & Ba 2015)
    ),
    "optimistic_adam_v2": OptimizerSpec(
        optimistic_adam_v2,
        LR_GRID,
        optax_name="optimistic_adam_v2",
        search_space=ADAM_SPACE
        | {"alpha": Range(0.0, 2.0, "linear"), "beta": Range(0.0, 2.0, "linear")},
        default_learning_rate=1e-3,  # Adam's (Kingma & Ba 2015)
    ),
}
__all__ = [
    "OptimisticAdamState",
    "OptimisticState",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
]
