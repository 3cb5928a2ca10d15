"""APOLLO: SGD with Adam-like scaling, estimated from a random low-rank projection."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_state,
    increment,
    require_params,
    value_at,
)
from optimizers.fira import (
    LOW_RANK_SPACE,
    channel_ratio,
    check_projection,
    full_rank_directions,
    init_low_rank,
    is_matrix,
    limit_norm_growth,
    low_rank_adam,
    low_rank_shapes,
    next_low_rank,
    step_then_decay,
)
from optimizers.registry import LR_GRID, OptimizerSpec

SCALE_TYPES = ("channel", "tensor")


class ApolloState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment, of the projected gradient R_t on matrices (of g_t elsewhere)
    nu: Any  # second moment, shaped like mu
    projector: Any  # P per matrix: r x n (m >= n) or m x r (m < n); (0, 0) elsewhere
    scaled_norm: Any  # ||S_{t-1}|| per matrix, the norm-growth limiter's memory; () elsewhere


def projector_shape(shape, rank: int) -> tuple[int, int]:
    """P's shape for an m x n matrix: r x n when m >= n (R = G P^T), else m x r (R = P^T G)."""
    return low_rank_shapes(shape, rank)[0]


def apollo_gaussian(seed: int, leaf_index, refresh, shape):
    """The standard normal float32 draw behind P: for the leaf at `leaf_index` (in tree
    order) at its `refresh`-th projection (0 at the first step), from `seed`."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), leaf_index), refresh)
    return jax.random.normal(key, shape, jnp.float32)


def apollo(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    rank: int = 256,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    scale_type: str = "channel",
    seed: int = 0,
    *,
    scale_front: bool = False,
    norm_growth_limiter: bool = True,
    correct_bias: bool = True,
) -> Optimizer:
    r"""APOLLO (Zhu et al., 2025): the raw gradient of each matrix, scaled per channel (or
    per tensor) by how much Adam would scale a random projection of it.

    For step t = 1, 2, ... with gradient G_t of an m x n matrix leaf, and P the r x n
    (m >= n) or m x r (m < n) Gaussian matrix N(0, 1/r), drawn anew at every
    `update_proj_gap`-th step from `seed`:

        R_t  = G_t P^T  (m >= n)   or   P^T G_t  (m < n)
        m_t  = b1 * m_{t-1} + (1 - b1) * R_t,   v_t = b2 * v_{t-1} + (1 - b2) * R_t^2
        N_t  = m_t / (sqrt(v_t) + eps)
        s_t  = ||N_t[i, :]|| / (||R_t[i, :]|| + 1e-8) per row i   (m >= n, "channel")
               ||N_t[:, j]|| / (||R_t[:, j]|| + 1e-8) per column j  (m < n, "channel")
               ||N_t|| / (||R_t|| + 1e-8)                          ("tensor")
        S_t  = sqrt(scale) * s_t * G_t
        S_t <- S_t / (max(||S_t|| / (||S_{t-1}|| + 1e-8), 1.01) / 1.01)   (t > 1)
        theta'  = theta_{t-1} - eta_t * S_t,   eta_t = lr_t * sqrt(1 - b2^t) / (1 - b1^t)
        theta_t = theta' - lr_t * wd_t * theta'

    The moments live in the low-rank space only (APOLLO's memory saving); the update is
    full-rank. The limiter (norm_growth_limiter=True, from Fira) keeps ||S_t|| within
    1.01 times its previous value, ||S_{t-1}|| being the limited norm. Every other leaf
    gets AdamW: S_t = m_t / (sqrt(v_t) + eps) of g_t itself. `rank` r may exceed the
    matrix's dimensions; rank 1 with scale_type "tensor" and a large `scale` (128 in the
    paper) is APOLLO-Mini.

    As in the reference implementation (the authors' `apollo-torch`, `APOLLOAdamW` with
    proj="random" and proj_type="std"): the bias corrections are folded into eta_t
    (correct_bias=False: eta_t = lr_t); the decay, decoupled, multiplies the stepped
    params by 1 - lr_t * wd_t (unscaled by the bias corrections); scale_front=True
    applies sqrt(scale) before the limiter instead of after it; the limiter applies
    from the second step. P is drawn in float32 and cast to the params' dtype. The
    reference draws it with torch's generator, seeded per parameter; here the draw of
    the leaf at index i (in tree order) at its k-th projection is
    `apollo_gaussian(seed, i, k, shape)` / sqrt(r). `mask` selects the leaves that decay.

    Reference: Zhu, Zhang, Cong, Liu, Park, Chandra, Long, Pan, Wang and Lee, "APOLLO:
    SGD-like Memory, AdamW-level Performance", MLSys 2025 (arXiv:2412.05270).
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("scale", scale)
    if scale_type not in SCALE_TYPES:
        raise ValueError(f"scale_type must be one of {SCALE_TYPES}, got {scale_type!r}")
    check_projection(rank, update_proj_gap)

    def init(params):
        return init_low_rank(ApolloState, params, lambda p: low_rank_shapes(p.shape, rank))

    def refreshed(index, g, projector, count):
        """P of one matrix leaf: drawn anew at every update_proj_gap-th step."""

        def draw():
            shape = projector_shape(g.shape, rank)
            gaussian = apollo_gaussian(seed, index, count // update_proj_gap, shape)
            return (gaussian / math.sqrt(rank)).astype(projector.dtype)

        return jax.lax.cond(count % update_proj_gap == 0, draw, lambda: projector)

    def update(grads, state, params=None, **extra):
        check_state(state, ApolloState)
        del extra
        require_params("apollo", params)
        check_same_tree(grads, params, "grads", "params")
        leaves, treedef = jax.tree.flatten(grads)
        projectors = treedef.unflatten(
            [
                refreshed(i, g, p, state.count) if is_matrix(g) else p
                for i, (g, p) in enumerate(
                    zip(leaves, treedef.flatten_up_to(state.projector), strict=True)
                )
            ]
        )
        projected, mu, nu, adam = low_rank_adam(grads, projectors, state, b1, b2, eps)

        def scaled(g, projector, r, n, previous):
            """(S_t, its norm for the limiter) of one matrix leaf: G_t itself is scaled."""
            del projector
            if scale_type == "tensor":
                factor = jnp.linalg.norm(n) / (jnp.linalg.norm(r) + 1e-8)
            else:
                factor = channel_ratio(n, r, rows=g.shape[0] >= g.shape[1])
            s = g * factor
            if scale_front:
                s = s * jnp.sqrt(scale).astype(s.dtype)
            norm = previous
            if norm_growth_limiter:
                s, norm = limit_norm_growth(s, previous, state.count == 0)
            if not scale_front:
                s = s * jnp.sqrt(scale).astype(s.dtype)
            return s, norm

        direction, scaled_norm = full_rank_directions(
            scaled, grads, projectors, projected, adam, state.scaled_norm
        )
        lr = value_at(learning_rate, state.count)
        eta = lr
        if correct_bias:
            t = increment(state.count)
            eta = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        updates = step_then_decay(direction, params, eta, lr, weight_decay, state.count, mask)
        return updates, next_low_rank(state, mu, nu, projectors, scaled_norm)

    return Optimizer(init, update)


REGISTRY = {
    # APOLLO runs at AdamW's learning rates (the paper's LLaMA runs: 1e-2 to 1e-3).
    # Skipped on problems without a matrix (then it would be AdamW).
    "apollo": OptimizerSpec(
        apollo,
        LR_GRID,
        matrix_only=True,
        search_space=LOW_RANK_SPACE,
        default_learning_rate=1e-3,  # apollo-torch's APOLLOAdamW
        reference="apollo-torch 1.0.3 APOLLOAdamW",
    ),
}
__all__ = ["ApolloState", "apollo", "apollo_gaussian", "projector_shape"]
