"""Nero: per-neuron normalised steps, each neuron's weights kept centred on the unit sphere."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_unit_interval,
    increment,
    state_dtype,
)
from optimizers.registry import OptimizerSpec, Range, log_grid
from optimizers.torch_style import advanced, check_arguments, learning_rate_at, map_leaves


def neuron_norm(x):
    """The 2-norm of each neuron (the slice along the first axis) shaped to broadcast
    against x; |x| for a vector or a scalar, each entry its own neuron."""
    if x.ndim <= 1:
        return jnp.abs(x)
    flat = x.reshape(x.shape[0], -1)
    return jnp.linalg.norm(flat, axis=1).reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def neuron_mean(x):
    """The mean of each neuron (slice along the first axis) of a leaf of rank >= 2."""
    flat = x.reshape(x.shape[0], -1)
    return jnp.mean(flat, axis=1).reshape((x.shape[0],) + (1,) * (x.ndim - 1))


class NeroState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    nu: Any  # per neuron, the moving average of its squared gradient norm
    scale: Any  # per leaf, the mean neuron norm at the start (0.01 where that is 0)


def nero(
    learning_rate: ScalarOrSchedule = 0.01,
    beta: float = 0.999,
    constraints: bool = True,
    eps: float = 1e-8,
) -> Optimizer:
    r"""Nero (Liu et al., 2021): each neuron's step is its gradient divided by a moving
    RMS of that gradient's norm, and scaled by the leaf's typical neuron norm; with
    constraints, each neuron of a leaf of rank >= 2 is re-centred to mean 0 and
    renormalised to norm 1 after every step.

    A neuron is a slice along the first axis of a leaf of rank >= 2, and each entry of
    a vector or a scalar. With P(w) = (w - mean(w)) / (||w - mean(w)|| + eps) per
    neuron (applied with constraints=True, on leaves of rank >= 2 only), the first
    update starts from P(theta_0), and sigma = mean of the neuron norms of it (0.01 if
    that is 0). For step t with gradient g_t:

        v_t     = beta * v_{t-1} + (1 - beta) * ||g_t||^2                   (per neuron)
        theta'  = theta_{t-1} - lr_t * sigma * g_t / (sqrt(v_t / (1 - beta^t)) + eps)
        theta_t = P(theta')

    (a 0/0 entry of the normalised gradient is 0). Arguments and defaults as
    `pytorch_optimizer.Nero` (lr named learning_rate), which projects the parameters
    at its first step as the rule does.

    Reference: Liu, Bernstein, Meister & Yue, "Learning by Turning: Neural Architecture
    Aware Optimisation", ICML 2021.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("beta", beta)
    check_nonnegative("eps", eps)

    def constrained(p):
        return constraints and p.ndim > 1

    def project(p):
        if not constrained(p):
            return p
        centred = p - neuron_mean(p)
        return centred / (neuron_norm(centred) + eps)

    def init(params):
        params = jax.tree.map(lambda p: jnp.asarray(p, state_dtype(p.dtype)), params)

        def scale(p):
            norm = jnp.mean(neuron_norm(project(p)))
            return jnp.where(norm == 0.0, jnp.asarray(0.01, norm.dtype), norm)

        return NeroState(
            count=jnp.zeros([], jnp.int32),
            nu=jax.tree.map(lambda p: jnp.zeros_like(neuron_norm(p)), params),
            scale=jax.tree.map(scale, params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("nero", state, NeroState, grads, params)
        t = increment(state.count)
        correction = 1.0 - beta**t

        def leaf(g, v, scale, p):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            start = jnp.where(state.count == 0, project(p), p) if constrained(p) else p
            norm = neuron_norm(g)
            v = beta * v + (1.0 - beta) * (norm * norm)
            normed = g / (jnp.sqrt(v / correction.astype(v.dtype)) + eps)
            normed = jnp.nan_to_num(normed, nan=0.0)
            moved = project(start + -(lr * scale) * normed)
            return moved - p, v

        updates, nu = map_leaves(leaf, grads, state.nu, state.scale, params)
        return updates, advanced(state, count=t, nu=nu)

    return Optimizer(init, update)


REGISTRY = {
    # Each step turns a neuron by about lr * sigma / ||w||: the paper tunes lr in
    # 1e-4 .. 1 and uses 0.01 by default.
    "nero": OptimizerSpec(
        nero,
        log_grid(1e-4, 1.0),
        search_space={"beta": Range(0.9, 0.9999, "one_minus_log")},
        reference="pytorch-optimizer 4.1.0 Nero",
    ),
}
__all__ = ["NeroState", "nero"]
