"""Adafactor: adaptive steps from factored second moments."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    abs_sq,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    increment,
    require_params,
    state_dtype,
    value_at,
    with_weight_decay,
)
from optimizers.registry import LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range


class AdafactorState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    v_row: Any  # per leaf: row statistics R of a factored leaf, else a (1,) placeholder
    v_col: Any  # per leaf: column statistics C of a factored leaf, else a (1,) placeholder
    v: Any  # per leaf: full second moment of an unfactored leaf, else a (1,) placeholder
    momentum: Any  # momentum buffer in dtype_momentum, () without momentum


def _factored_axes(shape, factored, min_dim_size_to_factor):
    """The (second largest, largest) axes of a leaf worth factoring, else None."""
    if not factored or len(shape) < 2:
        return None
    by_size = np.argsort(shape)
    if shape[by_size[-2]] < min_dim_size_to_factor:
        return None
    return int(by_size[-2]), int(by_size[-1])


def _root_mean_square(x, min_rms):
    """max(RMS(x), min_rms), with a finite gradient at small x (as optax's safe version)."""
    rms = jnp.sqrt(jnp.mean(abs_sq(x)))
    x = jnp.where(rms <= min_rms, jnp.ones_like(x), x)
    return jnp.where(rms <= min_rms, min_rms, jnp.sqrt(jnp.mean(abs_sq(x))))


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adafactor (Shazeer & Stern, 2018), in the arrangement of `optax.adafactor`.

    For step t (counted from 0, k = t - decay_offset), gradient g_t and
    b_t = 1 - (k + 1)^(-decay_rate):

        G       = |g_t|^2 + eps
        factored leaf (its two largest axes rows x cols, both >= min_dim_size_to_factor):
          R_t   = b_t R_{t-1} + (1 - b_t) mean_cols(G)
          C_t   = b_t C_{t-1} + (1 - b_t) mean_rows(G)
          u     = g_t / sqrt(R_t / mean(R_t)) / sqrt(C_t)
        other leaves:
          V_t   = b_t V_{t-1} + (1 - b_t) G,   u = g_t / sqrt(V_t)
        u       = u / max(1, RMS(u) / clipping_threshold)          (if clipping_threshold)
        u       = lr_t * u                                          (if learning_rate)
        u       = u * max(RMS(theta_{t-1}), 1e-3)        (if multiply_by_parameter_scale)
        m_t     = (1 - momentum) * u + momentum * m_{t-1};  u = m_t      (if momentum)
        theta_t = theta_{t-1} - (u + wd_t * theta_{t-1})                (if weight_decay_rate)

    As in optax, b_t is computed from the step count in float32. Same arguments and
    defaults as `optax.adafactor`.

    Reference: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear
    Memory Cost", ICML 2018.
    """
    if learning_rate is not None:
        check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("decay_rate", decay_rate)
    check_nonnegative("eps", eps)
    if clipping_threshold is not None:
        check_nonnegative("clipping_threshold", clipping_threshold)
    if momentum is not None:
        check_unit_interval("momentum", momentum)
    if weight_decay_rate is not None:
        check_nonnegative("weight_decay_rate", weight_decay_rate)
    if not isinstance(min_dim_size_to_factor, int) or min_dim_size_to_factor < 0:
        raise ValueError(
            f"min_dim_size_to_factor must be an int >= 0, got {min_dim_size_to_factor}"
        )

    def init(params):
        def placeholder(p):
            return jnp.zeros((1,), state_dtype(p.dtype))

        def row_col_full(p):
            axes = _factored_axes(p.shape, factored, min_dim_size_to_factor)
            if axes is None:
                return placeholder(p), placeholder(p), jnp.zeros_like(p, state_dtype(p.dtype))
            rows, cols = axes
            return (
                jnp.zeros(np.delete(p.shape, cols), state_dtype(p.dtype)),
                jnp.zeros(np.delete(p.shape, rows), state_dtype(p.dtype)),
                placeholder(p),
            )

        stats = [row_col_full(p) for p in jax.tree.leaves(params)]
        structure = jax.tree.structure(params)
        v_row, v_col, v = (jax.tree.unflatten(structure, part) for part in zip(*stats, strict=True))
        buffer = (
            jax.tree.map(lambda p: jnp.zeros_like(p, dtype_momentum), params)
            if momentum is not None
            else ()
        )
        return AdafactorState(jnp.zeros([], jnp.int32), v_row, v_col, v, buffer)

    def scaled_by_second_moment(g, v_row, v_col, v, decay):
        """g / sqrt(second moment estimate), and the new (R, C, V) of one leaf."""
        dtype = state_dtype(g.dtype)
        placeholder = jnp.zeros((1,), dtype)
        squared = abs_sq(g) + eps
        axes = _factored_axes(g.shape, factored, min_dim_size_to_factor)
        if axes is None:
            v = (decay * v + (1.0 - decay) * squared).astype(dtype)
            return g * v ** (-0.5), (placeholder, placeholder, v)
        rows, cols = axes
        v_row = (decay * v_row + (1.0 - decay) * jnp.mean(squared, axis=cols)).astype(dtype)
        v_col = (decay * v_col + (1.0 - decay) * jnp.mean(squared, axis=rows)).astype(dtype)
        rows_in_v_row = rows - 1 if rows > cols else rows
        row_factor = (v_row / jnp.mean(v_row, axis=rows_in_v_row, keepdims=True)) ** (-0.5)
        col_factor = v_col ** (-0.5)
        scaled = g * jnp.expand_dims(row_factor, cols) * jnp.expand_dims(col_factor, rows)
        return scaled, (v_row, v_col, placeholder)

    def update(grads, state, params=None, **extra):
        check_state(state, AdafactorState)
        del extra
        require_params("adafactor", params)
        check_same_tree(grads, params, "grads", "params")
        k = jnp.array(state.count - decay_offset + 1, jnp.float32)
        # In float32, as optax (a Python float decay_rate is weakly typed), also when traced.
        decay = 1.0 - k ** (-jnp.asarray(decay_rate, jnp.float32))
        structure = jax.tree.structure(grads)
        results = [
            scaled_by_second_moment(g, r, c, v, decay)
            for g, r, c, v in zip(
                *(jax.tree.leaves(tree) for tree in (grads, state.v_row, state.v_col, state.v)),
                strict=True,
            )
        ]
        u = jax.tree.unflatten(structure, [scaled for scaled, _ in results])
        v_row, v_col, v = (
            jax.tree.unflatten(structure, list(part))
            for part in zip(*[s for _, s in results], strict=True)
        )
        if clipping_threshold is not None:
            u = jax.tree.map(
                lambda x: x / jnp.maximum(1.0, jnp.sqrt(jnp.mean(abs_sq(x))) / clipping_threshold),
                u,
            )
        if learning_rate is not None:
            lr = value_at(learning_rate, state.count)
            # A scheduled rate is cast to each leaf's dtype, as optax's scale_by_schedule.
            u = jax.tree.map(
                lambda x: (jnp.asarray(lr, x.dtype) if callable(learning_rate) else lr) * x, u
            )
        if multiply_by_parameter_scale:
            u = jax.tree.map(lambda x, p: x * _root_mean_square(p, 1e-3), u, params)
        buffer = state.momentum
        if momentum is not None:
            u = jax.tree.map(lambda x, m: (1 - momentum) * x + momentum * m, u, state.momentum)
            buffer = jax.tree.map(lambda m: m.astype(dtype_momentum), u)
        if weight_decay_rate is not None:
            u = with_weight_decay(u, params, weight_decay_rate, state.count, weight_decay_mask)
        updates = jax.tree.map(lambda x: -1 * x, u)
        return updates, AdafactorState(increment(state.count), v_row, v_col, v, buffer)

    return Optimizer(init, update)


REGISTRY = {
    # decay_rate is the exponent of b_t = 1 - t^(-decay_rate) (0.8 in the paper).
    "adafactor": OptimizerSpec(
        adafactor,
        LR_GRID,
        optax_name="adafactor",
        search_space={
            "decay_rate": Range(0.5, 1.0, "linear"),
            "clipping_threshold": Range(0.5, 2.0),
            "weight_decay_rate": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=1e-2,  # Shazeer & Stern 2018: the relative step's cap
    ),
}
__all__ = ["AdafactorState", "adafactor"]
