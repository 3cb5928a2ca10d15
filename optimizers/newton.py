"""Newton's method with the exact Hessian: the second-order reference for small problems."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    require_loss,
    require_params,
)
from optimizers.registry import GRADIENT, Choice, OptimizerSpec, dense_hessian, log_grid


class NewtonState(NamedTuple):
    count: jax.Array  # int32 number of updates taken, feeds learning-rate schedules


def newton(learning_rate: ScalarOrSchedule = 1.0, damping: float = 0.0) -> Optimizer:
    r"""Newton's method, optionally damped (Levenberg), with the Hessian from `jax.hessian`.

    For step t with gradient g_t and Hessian H_t of the loss at theta_{t-1}, over all
    parameters flattened into one vector of n numbers:

        theta_t = theta_{t-1} - lr_t * (H_t + damping * I)^{-1} g_t

    With lr = 1 and damping = 0 one step solves a quadratic exactly, and near a strict
    minimum of a smooth function the error is squared at every step. The Hessian costs
    n gradient evaluations and n^2 memory and the solve n^3 time, so this is a reference
    for small problems, not a practical optimizer. optax has no counterpart.

    The update needs the loss: `update(grads, state, params, value_fn=f, **f_kwargs)`
    (a `value` and `grad` passed as by line-search callers are ignored).

    Reference: Nocedal & Wright, "Numerical Optimization", 2nd ed., chapter 3.3 (Newton's
    method) and 3.4 (Hessian modifications), 2006.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("damping", damping)

    def init(params):
        del params
        return NewtonState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, *, value_fn=None, value=None, grad=None, **fn_kwargs):
        check_state(state, NewtonState)
        del value, grad
        require_params("newton", params)
        require_loss("newton", value_fn=value_fn)
        check_same_tree(grads, params, "grads", "params")
        flat_params, unravel = ravel_pytree(params)
        flat_grads, _ = ravel_pytree(grads)
        hessian = jax.hessian(lambda x: value_fn(unravel(x), **fn_kwargs))(flat_params)
        damped = hessian + damping * jnp.eye(flat_params.size, dtype=hessian.dtype)
        direction = cast_like(unravel(jnp.linalg.solve(damped, flat_grads)), params)
        return descend(learning_rate, state.count, direction), NewtonState(increment(state.count))

    return Optimizer(init, update)


REGISTRY = {
    "newton": OptimizerSpec(
        newton,
        log_grid(0.1, 1.0),
        needs_value_fn=True,
        deterministic_only=True,
        max_dim=100,
        # The gradient and the dense Hessian.
        gradient_evaluations=lambda state, dim: GRADIENT + dense_hessian(dim),
        # Levenberg-Marquardt damping of the Hessian: none, or one per decade.
        search_space={"damping": Choice((0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))},
        reference="numpy's linear solve and closed-form optima",
    ),
}
__all__ = ["NewtonState", "newton"]
