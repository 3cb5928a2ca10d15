"""Sharpness-aware minimisation: descend with the gradient taken after an ascent step."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    apply_updates,
    check_nonnegative,
    check_same_tree,
    not_supported,
)
from optimizers.registry import GRADIENT, LR_GRID, MOMENTUM, OptimizerSpec, Range
from optimizers.sgd import sgd
from optimizers.transforms import EmptyState, chain, global_norm


def normalize() -> Optimizer:
    """Scales the updates to unit global 2-norm, g / ||g||, as `optax.contrib.normalize`."""

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        norm = global_norm(updates)
        return jax.tree.map(lambda g: g / norm, updates), state

    return Optimizer(init, update)


class SamState(NamedTuple):
    steps_since_sync: jax.Array  # int32 position in the cycle of sync_period steps
    opt_state: Any  # the outer optimizer's state
    adv_state: Any  # the adversarial (ascent) optimizer's state
    cache: Any  # the outer iterate during the ascent steps (None in opaque mode)


def sam(
    optimizer: Optimizer,
    adv_optimizer: Optimizer,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> Optimizer:
    r"""SAM (Foret et al., 2021): the outer optimizer steps with the gradient taken at an
    adversarial point reached by sync_period - 1 ascent steps of `adv_optimizer`.

    With adv_optimizer = chain(normalize(), sgd(rho)) and sync_period = 2, one SAM step
    from theta_t is

        theta_adv = theta_t + rho * g(theta_t) / ||g(theta_t)||
        theta_{t+1} = theta_t + optimizer_update(g(theta_adv))

    (the ascent negates adv_optimizer's update). opaque_mode=True takes the whole step
    in one update, which then needs the gradient function: call
    `update(grads, state, params, grad_fn=lambda params, i: gradient)`. Otherwise each
    update is one step of the cycle: sync_period - 1 ascent steps, then the outer step
    back from the cached outer iterate, so that the params alternate between the two.
    reset_state=True restarts adv_optimizer's state at every outer step. Same
    arguments and defaults as `optax.contrib.sam`, except batch_axis_name (averaging
    the ascent gradients across devices), not supported.

    Reference: Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
    Generalization", ICLR 2021.
    """
    if sync_period < 1:
        raise ValueError(f"sync_period must be >= 1, got {sync_period!r}")
    not_supported("batch_axis_name", batch_axis_name, None)

    def init(params):
        return SamState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=optimizer.init(params),
            adv_state=adv_optimizer.init(params),
            cache=None if opaque_mode else jax.tree.map(jnp.copy, params),
        )

    def ascend(grads, adv_state, params):
        """One ascent step: the negated update of adv_optimizer."""
        updates, adv_state = adv_optimizer.update(grads, adv_state, params)
        return jax.tree.map(jnp.negative, updates), adv_state

    def pick(condition, if_true, if_false):
        # Selected arithmetically, as optax does: XLA then rounds the chosen branch's
        # float32 operations alike in both (a jnp.where compiles them differently).
        return jax.tree.map(lambda a, b: condition * a + (1 - condition) * b, if_true, if_false)

    def one_step_of_the_cycle(grads, state, params, **extra):
        del extra
        check_same_tree(grads, params, "grads", "params")
        first = state.steps_since_sync == 0
        last = state.steps_since_sync == sync_period - 1
        ascent, adv_state = ascend(grads, state.adv_state, params)
        # The outer step is taken from the cached outer iterate, with the gradient at params.
        outer, opt_state = optimizer.update(grads, state.opt_state, state.cache)
        outer = jax.tree.map(lambda c, p, u: c - p + u, state.cache, params, outer)
        restart = adv_optimizer.init(params) if reset_state else state.adv_state
        return pick(last, outer, ascent), SamState(
            steps_since_sync=(state.steps_since_sync + 1) % sync_period,
            opt_state=pick(last, opt_state, state.opt_state),
            adv_state=pick(last, restart, adv_state),
            cache=pick(first, params, state.cache),
        )

    def whole_step(grads, state, params, *, grad_fn=None, **extra):
        del extra
        if grad_fn is None:
            raise ValueError("sam(opaque_mode=True) needs update(..., grad_fn=fn(params, i))")
        check_same_tree(grads, params, "grads", "params")
        adv_params, adv_state = params, state.adv_state
        for i in range(sync_period - 1):
            ascent, adv_state = ascend(grads, adv_state, adv_params)
            adv_params = apply_updates(adv_params, ascent)
            grads = grad_fn(adv_params, i)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        return updates, SamState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=opt_state,
            adv_state=adv_state,
            cache=None,
        )

    return Optimizer(init, whole_step if opaque_mode else one_step_of_the_cycle)


def sam_sgd(
    learning_rate: float,
    radius: float = 0.05,
    momentum: float | None = 0.9,
) -> Optimizer:
    """SAM as the paper runs it: `sam` in opaque mode, SGD with momentum outside and a
    normalised ascent step of length `radius` (the paper's rho), that is
    `sam(sgd(learning_rate, momentum), chain(normalize(), sgd(radius)), opaque_mode=True)`.
    Its update needs the gradient function, `grad_fn`."""
    check_nonnegative("radius", radius)
    return sam(sgd(learning_rate, momentum), chain(normalize(), sgd(radius)), opaque_mode=True)


REGISTRY = {
    # The paper tunes SGD's learning rate as usual (0.1 for its ResNets at batch 256) and
    # the radius rho in {0.01, 0.02, 0.05, 0.1, 0.2, 0.5}, 0.05 by default. Each step costs
    # a second gradient, at the ascended point.
    "sam": OptimizerSpec(
        sam_sgd,
        LR_GRID,
        needs_loss=True,
        gradient_evaluations=2 * GRADIENT,
        search_space={"radius": Range(1e-2, 0.5), "momentum": MOMENTUM},
        default_learning_rate=0.1,  # Foret et al. 2021
        reference="optax.contrib 0.2.8 sam(sgd with momentum, normalize)",
    ),
}
__all__ = ["SamState", "normalize", "sam", "sam_sgd"]
