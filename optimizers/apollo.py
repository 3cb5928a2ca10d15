"""APOLLO: SGD with Adam-like scaling, estimated from a random low-rank projection."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    increment,
    require_params,
    state_dtype,
    update_moment,
    value_at,
    with_weight_decay,
)
from optimizers.fira import channel_ratio, limit_norm_growth
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range

SCALE_TYPES = ("channel", "tensor")


class ApolloState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment, of the projected gradient R_t on matrices (of g_t elsewhere)
    nu: Any  # second moment, shaped like mu
    projector: Any  # P per matrix: r x n (m >= n) or m x r (m < n); (0, 0) elsewhere
    scaled_norm: Any  # ||S_{t-1}|| per matrix, the norm-growth limiter's memory; () elsewhere


def _is_matrix(leaf) -> bool:
    """The leaves APOLLO projects: rank 2. Every other leaf gets AdamW."""
    return jnp.ndim(leaf) == 2


def projector_shape(shape, rank: int) -> tuple[int, int]:
    """P's shape for an m x n matrix: r x n when m >= n (R = G P^T), else m x r (R = P^T G)."""
    m, n = shape
    return (rank, n) if m >= n else (m, rank)


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
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")
    if isinstance(update_proj_gap, bool) or not isinstance(update_proj_gap, int):
        raise TypeError(f"update_proj_gap must be an int, got {update_proj_gap!r}")
    if update_proj_gap < 1:
        raise ValueError(f"update_proj_gap must be >= 1, got {update_proj_gap}")

    def low_rank_shape(p):
        m, n = p.shape
        return (m, rank) if m >= n else (rank, n)

    def init(params):
        def moment(p):
            shape = low_rank_shape(p) if _is_matrix(p) else jnp.shape(p)
            return jnp.zeros(shape, state_dtype(p.dtype))

        def projector(p):
            shape = projector_shape(p.shape, rank) if _is_matrix(p) else (0, 0)
            return jnp.zeros(shape, state_dtype(p.dtype))

        return ApolloState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(moment, params),
            nu=jax.tree.map(moment, params),
            projector=jax.tree.map(projector, params),
            scaled_norm=jax.tree.map(lambda p: jnp.zeros([], state_dtype(p.dtype)), params),
        )

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
        t = increment(state.count)
        leaves, treedef = jax.tree.flatten(grads)
        projectors = [
            refreshed(i, g, p, state.count) if _is_matrix(g) else p
            for i, (g, p) in enumerate(
                zip(leaves, treedef.flatten_up_to(state.projector), strict=True)
            )
        ]
        projected = [
            (g @ p.T if g.shape[0] >= g.shape[1] else p.T @ g) if _is_matrix(g) else g
            for g, p in zip(leaves, projectors, strict=True)
        ]
        projected = treedef.unflatten(projected)
        mu = update_moment(projected, state.mu, b1, 1)
        nu = update_moment(projected, state.nu, b2, 2)
        adam = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)

        def scaled(g, r, n, previous):
            """(S_t, its norm for the limiter) of one matrix leaf."""
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

        pairs = [
            scaled(g, r, n, prev) if _is_matrix(g) else (n, prev)
            for g, r, n, prev in zip(
                leaves,
                treedef.flatten_up_to(projected),
                treedef.flatten_up_to(adam),
                treedef.flatten_up_to(state.scaled_norm),
                strict=True,
            )
        ]
        direction = treedef.unflatten([pair[0] for pair in pairs])
        scaled_norm = treedef.unflatten([pair[1] for pair in pairs])

        lr = value_at(learning_rate, state.count)
        eta = lr
        if correct_bias:
            eta = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        stepped = jax.tree.map(lambda d: -jnp.asarray(eta, d.dtype) * d, direction)
        moved = jax.tree.map(lambda p, s: p + s, params, stepped)
        zeros = jax.tree.map(jnp.zeros_like, stepped)
        decay = with_weight_decay(zeros, moved, weight_decay, state.count, mask)
        updates = jax.tree.map(lambda s, d: s - lr * d, stepped, decay)
        new_state = ApolloState(
            count=t,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            projector=treedef.unflatten(projectors),
            scaled_norm=cast_like(scaled_norm, state.scaled_norm),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # APOLLO runs at AdamW's learning rates (the paper's LLaMA runs: 1e-2 to 1e-3).
    # Skipped on problems without a matrix (then it would be AdamW).
    "apollo": OptimizerSpec(
        apollo,
        LR_GRID,
        matrix_only=True,
        search_space=ADAM_SPACE | {"scale": Range(0.05, 2.0), "weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # apollo-torch's APOLLOAdamW
        reference="apollo-torch 1.0.3 APOLLOAdamW",
    ),
}
__all__ = ["ApolloState", "apollo", "apollo_gaussian", "projector_shape"]
