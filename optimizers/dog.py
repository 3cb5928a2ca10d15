"""DoG and DoWG: parameter-free step sizes from the distance travelled from the start."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    copy_tree,
    descend,
    increment,
    lowest_dtype,
    require_params,
    squared_norm,
    with_weight_decay,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, OptimizerSpec, log_grid

INIT_STEPS = ("distance", "learning_rate", "heuristic")


class DogState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules
    init_params: Any  # theta_0
    max_dist: jax.Array  # r_t = max(r_eps, max_k ||theta_k - theta_0||)
    sum_sq_norm_grads: jax.Array  # sum_k ||g_k||^2


def _decay(grads, params, weight_decay, count, mask):
    """g + wd * theta where a weight decay is given (None: none, not even a zero one)."""
    if weight_decay is None:
        return grads
    return with_weight_decay(grads, params, weight_decay, count, mask)


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, float] = ("heuristic", 1e-6),
    eps: float = 1e-8,
    weight_decay: float | None = None,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""DoG, "Distance over Gradients" (Ivgi et al., 2023): SGD whose step size is the
    largest distance from the start over the root of the summed squared gradient norms.

    For step t = 0, 1, ... with gradient g_t (+ wd * theta_t when weight_decay is given):

        r_t     = max(r_{t-1}, ||theta_t - theta_0||),      r_{-1} = r_eps
        G_t     = G_{t-1} + ||g_t||^2,                       G_{-1} = 0
        eta_t   = r_t / sqrt(G_t + eps)
        theta_{t+1} = theta_t - lr_t * eta_t * g_t

    Norms are over all leaves together. `init_step` sets the first step: ("distance",
    r) gives r_eps = r; ("heuristic", a) gives r_eps = a * (1 + ||theta_0||); and
    ("learning_rate", eta) takes eta_0 = eta and r_eps = 0. lr_t only rescales the
    step (1 in the paper). Same arguments and defaults as `optax.contrib.dog`.

    Reference: Ivgi et al., "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
    Size Schedule", ICML 2023.
    """
    init_step_type, init_step_value = init_step
    if init_step_type not in INIT_STEPS:
        raise ValueError(f"init_step must start with one of {INIT_STEPS}, got {init_step_type!r}")
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("init_step", init_step_value)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        if init_step_type == "distance":
            r_eps = init_step_value
        elif init_step_type == "heuristic":
            r_eps = init_step_value * (1 + jnp.sqrt(squared_norm(params)))
        else:  # "learning_rate": the first step size is given, no distance is assumed
            r_eps = 0.0
        dtype = lowest_dtype(params)
        return DogState(
            count=jnp.zeros([], jnp.int32),
            init_params=copy_tree(params),
            max_dist=jnp.asarray(r_eps, dtype),
            sum_sq_norm_grads=jnp.zeros([], dtype),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("dog", params)
        check_same_tree(grads, params, "grads", "params")
        grads = _decay(grads, params, weight_decay, state.count, mask)
        travelled = jax.tree.map(lambda p0, p: p0 - p, state.init_params, params)
        max_dist = jnp.maximum(state.max_dist, jnp.sqrt(squared_norm(travelled)))
        sum_sq_norm_grads = state.sum_sq_norm_grads + squared_norm(grads)
        eta = max_dist / jnp.sqrt(sum_sq_norm_grads + eps)
        if init_step_type == "learning_rate":
            eta = jnp.where(state.count == 0, init_step_value, eta)
        direction = jax.tree.map(lambda g: eta * g, grads)
        new_state = DogState(
            count=increment(state.count),
            init_params=state.init_params,
            max_dist=max_dist,
            sum_sq_norm_grads=sum_sq_norm_grads,
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


class DowgState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules
    init_params: Any  # theta_0
    weighted_sq_norm_grads: jax.Array  # v_t = sum_k rbar_k^2 ||g_k||^2
    estim_sq_dist: jax.Array  # rbar_t^2 = max(rbar_eps^2, max_k ||theta_k - theta_0||^2)


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: float | None = None,
    eps: float = 1e-4,
    weight_decay: float | None = None,
    mask: Any | Callable | None = None,
) -> Optimizer:
    r"""DoWG, "Distance over Weighted Gradients" (Khaled et al., 2023): DoG with each
    gradient weighted by the squared distance travelled when it was taken.

    For step t = 0, 1, ... with gradient g_t (+ wd * theta_t when weight_decay is given):

        rbar_t^2  = max(rbar_{t-1}^2, ||theta_t - theta_0||^2),  rbar_{-1}^2 = init_estim_sq_dist
        v_t       = v_{t-1} + rbar_t^2 * ||g_t||^2,               v_{-1} = 0
        eta_t     = rbar_t^2 / (sqrt(v_t) + eps)
        theta_{t+1} = theta_t - lr_t * eta_t * g_t

    init_estim_sq_dist defaults to eps. Norms are over all leaves together; lr_t only
    rescales the step (1 in the paper). Same arguments and defaults as
    `optax.contrib.dowg`.

    Reference: Khaled et al., "DoWG Unleashed: An Efficient Universal Parameter-Free
    Gradient Descent Method", NeurIPS 2023.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("init_estim_sq_dist", init_estim_sq_dist)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        dtype = lowest_dtype(params)
        initial = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return DowgState(
            count=jnp.zeros([], jnp.int32),
            init_params=copy_tree(params),
            weighted_sq_norm_grads=jnp.zeros([], dtype),
            estim_sq_dist=jnp.asarray(initial, dtype),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("dowg", params)
        check_same_tree(grads, params, "grads", "params")
        grads = _decay(grads, params, weight_decay, state.count, mask)
        travelled = jax.tree.map(lambda p0, p: p0 - p, state.init_params, params)
        estim_sq_dist = jnp.maximum(state.estim_sq_dist, squared_norm(travelled))
        weighted = estim_sq_dist * squared_norm(grads) + state.weighted_sq_norm_grads
        eta = estim_sq_dist / (jnp.sqrt(weighted) + eps)
        direction = jax.tree.map(lambda g: eta * g, grads)
        new_state = DowgState(
            count=increment(state.count),
            init_params=state.init_params,
            weighted_sq_norm_grads=weighted,
            estim_sq_dist=estim_sq_dist,
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # Parameter-free (lr = 1 in both papers); the grid checks how much a constant factor
    # on the adapted step size helps or hurts.
    "dog": OptimizerSpec(
        dog,
        log_grid(1e-2, 1e2, per_decade=1),
        search_space={"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 dog",
    ),
    "dowg": OptimizerSpec(
        dowg,
        log_grid(1e-2, 1e2, per_decade=1),
        search_space={"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 dowg",
    ),
}
__all__ = ["DogState", "DowgState", "dog", "dowg"]
