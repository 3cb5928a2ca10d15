"""Fira: GaLore's low-rank Adam plus the scaled residual of the gradient, full rank."""

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
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range

# The norm-growth limiter's bound: ||S_t|| at most this many times ||S_{t-1}||.
GROWTH = 1.01


class FiraState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment, of the projected gradient R_t on matrices (of g_t elsewhere)
    nu: Any  # second moment, shaped like mu
    projector: Any  # P per matrix: r x n (m >= n) or m x r (m < n); (0, 0) elsewhere
    scaled_norm: Any  # ||S_{t-1}|| per matrix, the norm-growth limiter's memory; () elsewhere


def _is_matrix(leaf) -> bool:
    """The leaves Fira projects: rank 2. Every other leaf gets AdamW."""
    return jnp.ndim(leaf) == 2


def limit_norm_growth(s, previous, first):
    """Fira's norm-growth limiter: (S_t, ||S_t||) with S_t divided by
    max(||S_t|| / (||S_{t-1}|| + 1e-8), GROWTH) / GROWTH, except at the `first` step."""
    norm = jnp.linalg.norm(s)
    limiter = jnp.maximum(norm / (previous + 1e-8), GROWTH) / GROWTH
    limiter = jnp.where(first, jnp.ones_like(limiter), limiter)
    return s / limiter, norm / limiter


def channel_ratio(numerator, denominator, rows: bool):
    """||numerator|| / (||denominator|| + 1e-8) per row (rows=True, a column vector) or
    per column (a row vector): how much a rule's scaling stretches each channel."""
    axis = 1 if rows else 0
    ratio = jnp.linalg.norm(numerator, axis=axis) / (jnp.linalg.norm(denominator, axis=axis) + 1e-8)
    return ratio[:, None] if rows else ratio


def fira(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    rank: int = 128,
    update_proj_gap: int = 50,
    scale: float = 1.0,
) -> Optimizer:
    r"""Fira (Chen et al., 2024): GaLore's Adam on a low-rank projection of each matrix
    gradient, plus the part of the gradient the projection misses, scaled as Adam
    scales the projected part.

    For step t = 1, 2, ... with gradient G_t of an m x n matrix leaf, r = min(rank, m, n)
    and P refreshed at t = 1 and at every t divisible by `update_proj_gap` from the SVD
    G_t = U S V^T (computed in float32):

        P    = V^T[:r, :]  (m >= n, r x n)    or   U[:, :r]  (m < n, m x r)
        R_t  = G_t P^T     (m >= n)           or   P^T G_t   (m < n)
        m_t  = b1 * m_{t-1} + (1 - b1) * R_t,  v_t = b2 * v_{t-1} + (1 - b2) * R_t^2
        N_t  = m_t / (sqrt(v_t) + eps)
        B(X) = scale * X P   (m >= n)          or   scale * P X   (m < n)
        s_t  = ||N_t[i, :]|| / (||R_t[i, :]|| + 1e-8) per row i  (m >= n), per column (m < n)
        S_t  = s_t * (G_t - B(R_t))
        S_t <- S_t / (max(||S_t|| / (||S_{t-1}|| + 1e-8), 1.01) / 1.01)   (t > 1)
        theta'  = theta_{t-1} - eta_t * (B(N_t) + S_t),  eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t)
        theta_t = theta' - lr_t * wd_t * theta'

    ||S_{t-1}|| is the limited norm. Every other leaf gets AdamW with the same eta_t
    and decay: theta' = theta_{t-1} - eta_t * m_t / (sqrt(v_t) + eps). As in the
    reference implementation (pytorch-optimizer's `Fira`, projection_type="std"): the
    bias corrections are folded into eta_t, `scale` also multiplies the projected-back
    R_t that the residual subtracts, and the decay multiplies the stepped params by
    1 - lr_t * wd_t. The moments keep their values when P is refreshed. `mask` (a tree
    of bools or a function of the params) selects the leaves that decay.

    Reference: Chen et al., "Fira: Can We Achieve Full-rank Training of LLMs Under
    Low-rank Constraint?", arXiv:2410.01623.
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("scale", scale)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")
    if isinstance(update_proj_gap, bool) or not isinstance(update_proj_gap, int):
        raise TypeError(f"update_proj_gap must be an int, got {update_proj_gap!r}")
    if update_proj_gap < 1:
        raise ValueError(f"update_proj_gap must be >= 1, got {update_proj_gap}")

    def shapes(p):
        """(P, R_t) shapes of one matrix leaf."""
        m, n = p.shape
        r = min(rank, m, n)
        return ((r, n), (m, r)) if m >= n else ((m, r), (r, n))

    def init(params):
        def moment(p):
            shape = shapes(p)[1] if _is_matrix(p) else jnp.shape(p)
            return jnp.zeros(shape, state_dtype(p.dtype))

        def projector(p):
            return jnp.zeros(shapes(p)[0] if _is_matrix(p) else (0, 0), state_dtype(p.dtype))

        return FiraState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(moment, params),
            nu=jax.tree.map(moment, params),
            projector=jax.tree.map(projector, params),
            scaled_norm=jax.tree.map(lambda p: jnp.zeros([], state_dtype(p.dtype)), params),
        )

    def refreshed(g, projector, count):
        """P of one matrix leaf: the top singular vectors of G_t at a refresh."""
        m, n = g.shape
        r = min(rank, m, n)

        def top_singular_vectors():
            u, _, vh = jnp.linalg.svd(g.astype(jnp.float32), full_matrices=False)
            return (vh[:r, :] if m >= n else u[:, :r]).astype(projector.dtype)

        refresh = (count == 0) | ((count + 1) % update_proj_gap == 0)
        return jax.lax.cond(refresh, top_singular_vectors, lambda: projector)

    def project(g, p):
        return g @ p.T if g.shape[0] >= g.shape[1] else p.T @ g

    def project_back(x, p, g):
        return scale * (x @ p if g.shape[0] >= g.shape[1] else p @ x)

    def update(grads, state, params=None, **extra):
        check_state(state, FiraState)
        del extra
        require_params("fira", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        leaves, treedef = jax.tree.flatten(grads)
        projectors = [
            refreshed(g, p, state.count) if _is_matrix(g) else p
            for g, p in zip(leaves, treedef.flatten_up_to(state.projector), strict=True)
        ]
        projected = treedef.unflatten(
            [project(g, p) if _is_matrix(g) else g for g, p in zip(leaves, projectors, strict=True)]
        )
        mu = update_moment(projected, state.mu, b1, 1)
        nu = update_moment(projected, state.nu, b2, 2)
        adam = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)

        def full_rank(g, p, r, n, previous):
            """(the step B(N_t) + S_t, the limiter's ||S_t||) of one matrix leaf."""
            factor = channel_ratio(n, r, rows=g.shape[0] >= g.shape[1])
            residual = (g - project_back(r, p, g)) * factor
            residual, norm = limit_norm_growth(residual, previous, state.count == 0)
            return project_back(n, p, g) + residual, norm

        pairs = [
            full_rank(g, p, r, n, prev) if _is_matrix(g) else (n, prev)
            for g, p, r, n, prev in zip(
                leaves,
                projectors,
                treedef.flatten_up_to(projected),
                treedef.flatten_up_to(adam),
                treedef.flatten_up_to(state.scaled_norm),
                strict=True,
            )
        ]
        direction = treedef.unflatten([pair[0] for pair in pairs])
        scaled_norm = treedef.unflatten([pair[1] for pair in pairs])

        lr = value_at(learning_rate, state.count)
        eta = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        stepped = jax.tree.map(lambda d: -jnp.asarray(eta, d.dtype) * d, direction)
        moved = jax.tree.map(lambda p, s: p + s, params, stepped)
        zeros = jax.tree.map(jnp.zeros_like, stepped)
        decay = with_weight_decay(zeros, moved, weight_decay, state.count, mask)
        updates = jax.tree.map(lambda s, d: s - lr * d, stepped, decay)
        new_state = FiraState(
            count=t,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            projector=treedef.unflatten(projectors),
            scaled_norm=cast_like(scaled_norm, state.scaled_norm),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # Fira runs at AdamW's learning rates (the paper's LLaMA runs: 1e-2 and below).
    # Skipped on problems without a matrix (then it would be AdamW).
    "fira": OptimizerSpec(
        fira,
        LR_GRID,
        matrix_only=True,
        search_space=ADAM_SPACE | {"scale": Range(0.05, 2.0), "weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # pytorch-optimizer's Fira
        reference="pytorch-optimizer 4.1.0 Fira",
    ),
}
__all__ = ["FiraState", "channel_ratio", "fira", "limit_norm_growth"]
