"""CAME: Adafactor's factored second moment, with a confidence-weighted momentum."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    descend,
    increment,
    state_dtype,
    with_weight_decay,
)
from optimizers.registry import (
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)


class CameState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum m of the clipped preconditioned gradient
    nu: Any  # second moment v of an unfactored leaf (rank < 2); (0,) for a factored one
    row: Any  # row means of the factored second moment (shape[:-1]); (0,) if unfactored
    col: Any  # its column means (shape[:-2] + shape[-1:]); (0,) if unfactored
    res_row: Any  # row means of the factored residual statistic U_t; (0,) if unfactored
    res_col: Any  # its column means; (0,) if unfactored
    max_nu: Any  # the running maximum of 1 / V_t (ams_bound); (0,) without


def _factored(leaf) -> bool:
    """The leaves whose statistics are factored into rows and columns: rank >= 2."""
    return jnp.ndim(leaf) >= 2


def _rows_and_cols(p):
    """Zero row and column statistics of a factored leaf, else empty placeholders."""
    dtype = state_dtype(p.dtype)
    if not _factored(p):
        return jnp.zeros((0,), dtype), jnp.zeros((0,), dtype)
    return jnp.zeros(p.shape[:-1], dtype), jnp.zeros(p.shape[:-2] + p.shape[-1:], dtype)


def _inverse_sqrt_factored(row, col):
    """The rank-one approximation's rsqrt: rsqrt(R_i / mean(R)) * rsqrt(C_j)."""
    r_factor = jax.lax.rsqrt(row / jnp.mean(row, axis=-1, keepdims=True))
    return r_factor[..., :, None] * jax.lax.rsqrt(col)[..., None, :]


def came(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.9999,
    weight_decay: ScalarOrSchedule = 0.0,
    clip_threshold: float = 1.0,
    eps1: float = 1e-30,
    eps2: float = 1e-16,
    mask: Any = None,
    *,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = False,
) -> Optimizer:
    r"""CAME (Luo et al., 2023): Adafactor with a momentum whose step is divided by the
    square root of a factored estimate of its own instability.

    For step t = 1, 2, ... with gradient g_t of an n x m leaf (rank >= 2: the last two
    axes are factored, the others batch):

        R_t = b2 * R_{t-1} + (1 - b2) * mean_j(g_t^2 + eps1)        (rows)
        C_t = b2 * C_{t-1} + (1 - b2) * mean_i(g_t^2 + eps1)        (columns)
        V_t = rsqrt(R_t / mean(R_t)) rsqrt(C_t)^T                    (outer product)
        u_t = V_t * g_t,   u_t <- u_t / max(1, RMS(u_t) / clip_threshold)
        m_t = b1 * m_{t-1} + (1 - b1) * u_t
        U_t: R', C' as R, C with b3 of (u_t - m_t)^2 + eps2, S_t their V
        theta_t = theta_{t-1} - lr_t * (S_t * m_t + wd_t * theta_{t-1})

    A leaf of rank < 2 keeps the full v_t = b2 * v_{t-1} + (1 - b2) * (g_t^2 + eps1),
    V_t = rsqrt(v_t), and steps along m_t itself (no confidence factor). RMS(x) is
    ||x||_2 / sqrt(size of x). No bias correction, as in the paper.

    Options, as in the reference implementation (pytorch-optimizer's `CAME`):

    - ams_bound=True: M_t = max(M_{t-1}, 1 / V_t) and V_t <- rsqrt(M_t / b2), the
      reference's bound (M_0 = 0);
    - weight_decouple=False: the decay is coupled, added to the gradient first
      (g_t <- g_t + wd_t * theta_{t-1}), and the step is lr_t * S_t * m_t;
    - fixed_decay=True (decoupled only): the decay wd_t * theta_{t-1} is not scaled
      by the learning rate.

    `mask` (a tree of bools or a function of the params) selects the leaves that decay.

    Reference: Luo, Ren, Zheng, Jiang, Jiang and You, "CAME: Confidence-guided Adaptive
    Memory Efficient Optimization", ACL 2023.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_unit_interval("b3", b3)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("clip_threshold", clip_threshold)
    check_nonnegative("eps1", eps1)
    check_nonnegative("eps2", eps2)

    def init(params):
        def empty(p):
            return jnp.zeros((0,), state_dtype(p.dtype))

        def full(p):
            return jnp.zeros_like(p, dtype=state_dtype(p.dtype))

        def rows(p):
            return _rows_and_cols(p)[0]

        def cols(p):
            return _rows_and_cols(p)[1]

        return CameState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(full, params),
            nu=jax.tree.map(lambda p: empty(p) if _factored(p) else full(p), params),
            row=jax.tree.map(rows, params),
            col=jax.tree.map(cols, params),
            res_row=jax.tree.map(rows, params),
            res_col=jax.tree.map(cols, params),
            max_nu=jax.tree.map(full if ams_bound else empty, params),
        )

    def leaf_update(g, m, v, row, col, res_row, res_col, max_nu):
        """(step direction, new statistics) of one leaf."""
        square = g * g + eps1
        if _factored(g):
            row = b2 * row + (1 - b2) * jnp.mean(square, axis=-1)
            col = b2 * col + (1 - b2) * jnp.mean(square, axis=-2)
            scale = _inverse_sqrt_factored(row, col)
        else:
            v = b2 * v + (1 - b2) * square
            scale = jax.lax.rsqrt(v)
        if ams_bound:
            max_nu = jnp.maximum(max_nu, 1 / scale)
            scale = jax.lax.rsqrt(max_nu / b2)
        u = scale * g
        rms = jnp.sqrt(jnp.sum(u * u)) / jnp.sqrt(jnp.asarray(u.size, u.dtype))
        u = u / jnp.maximum(rms / clip_threshold, 1.0)
        m = m + (1 - b1) * (u - m)
        if _factored(g):
            residual = (u - m) ** 2 + eps2
            res_row = b3 * res_row + (1 - b3) * jnp.mean(residual, axis=-1)
            res_col = b3 * res_col + (1 - b3) * jnp.mean(residual, axis=-2)
            direction = _inverse_sqrt_factored(res_row, res_col) * m
        else:
            direction = m
        return direction, (m, v, row, col, res_row, res_col, max_nu)

    def update(grads, state, params=None, **extra):
        check_state(state, CameState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        if not weight_decouple:
            grads = with_weight_decay(grads, params, weight_decay, state.count, mask)
        leaves, treedef = jax.tree.flatten(grads)
        fields = (state.mu, state.nu, state.row, state.col)
        fields += (state.res_row, state.res_col, state.max_nu)
        columns = [treedef.flatten_up_to(f) for f in fields]
        results = [leaf_update(g, *rest) for g, *rest in zip(leaves, *columns, strict=True)]
        direction = treedef.unflatten([r[0] for r in results])
        new = [treedef.unflatten([r[1][i] for r in results]) for i in range(len(fields))]
        if weight_decouple and not fixed_decay:
            direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        updates = descend(learning_rate, state.count, direction)
        if weight_decouple and fixed_decay:
            zeros = jax.tree.map(jnp.zeros_like, updates)
            decay = with_weight_decay(zeros, params, weight_decay, state.count, mask)
            updates = jax.tree.map(lambda u, d: u - d, updates, decay)
        new_state = CameState(
            increment(state.count), *(cast_like(n, f) for n, f in zip(new, fields, strict=True))
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper trains at Adam's learning rates (2e-4 for BERT, 1e-3 and below elsewhere).
    "came": OptimizerSpec(
        came,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "b3": Range(0.99, 0.99999, "one_minus_log"),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        default_learning_rate=2e-4,  # Luo et al. 2023, pytorch-optimizer's CAME
        reference="pytorch-optimizer 4.1.0 CAME",
    ),
}
__all__ = ["CameState", "came"]
