"""Fira: GaLore's low-rank Adam plus the scaled residual of the gradient, full rank.

Also what APOLLO (`optimizers.apollo`) shares with it: the projection of each matrix
gradient, Adam's moments of the projected gradient, the norm-growth limiter, the
per-channel scaling and the step followed by a decoupled decay of the stepped params.
"""

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
# The search space of Fira and APOLLO: Adam's, the scale of their full-rank step, the decay.
LOW_RANK_SPACE = ADAM_SPACE | {"scale": Range(0.05, 2.0), "weight_decay": WEIGHT_DECAY_OR_OFF}


class FiraState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment, of the projected gradient R_t on matrices (of g_t elsewhere)
    nu: Any  # second moment, shaped like mu
    projector: Any  # P per matrix: r x n (m >= n) or m x r (m < n); (0, 0) elsewhere
    scaled_norm: Any  # ||S_{t-1}|| per matrix, the norm-growth limiter's memory; () elsewhere


def is_matrix(leaf) -> bool:
    """The leaves Fira and APOLLO project: rank 2. Every other leaf gets AdamW."""
    return jnp.ndim(leaf) == 2


def check_projection(rank, update_proj_gap) -> None:
    """Raises where the projection's rank is not an int >= 1 or its refresh period
    update_proj_gap not an int >= 1 (TypeError for a non-int period)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")
    if isinstance(update_proj_gap, bool) or not isinstance(update_proj_gap, int):
        raise TypeError(f"update_proj_gap must be an int, got {update_proj_gap!r}")
    if update_proj_gap < 1:
        raise ValueError(f"update_proj_gap must be >= 1, got {update_proj_gap}")


def low_rank_shapes(shape, r: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(P's shape, R_t's shape) for an m x n matrix projected to rank r:
    (r x n, m x r) when m >= n (R = G P^T), else (m x r, r x n) (R = P^T G)."""
    m, n = shape
    return ((r, n), (m, r)) if m >= n else ((m, r), (r, n))


def init_low_rank(state_type, params, shapes):
    """`state_type`'s state before the first step, all zeros: the moments shaped as R_t
    and the projector as P on each matrix (shapes(p) = (P's shape, R_t's shape)), the
    moments shaped as the leaf and a (0, 0) projector elsewhere, a scalar norm per leaf."""

    def moment(p):
        shape = shapes(p)[1] if is_matrix(p) else jnp.shape(p)
        return jnp.zeros(shape, state_dtype(p.dtype))

    def projector(p):
        return jnp.zeros(shapes(p)[0] if is_matrix(p) else (0, 0), state_dtype(p.dtype))

    return state_type(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(moment, params),
        nu=jax.tree.map(moment, params),
        projector=jax.tree.map(projector, params),
        scaled_norm=jax.tree.map(lambda p: jnp.zeros([], state_dtype(p.dtype)), params),
    )


def project(g, p):
    """R = G P^T (m >= n) or P^T G (m < n): the m x n matrix G in P's low-rank space."""
    return g @ p.T if g.shape[0] >= g.shape[1] else p.T @ g


def low_rank_adam(grads, projectors, state, b1, b2, eps):
    """(R_t, m_t, v_t, N_t): each matrix gradient projected by its P (each other leaf's
    gradient as it is), Adam's moments of it, and N_t = m_t / (sqrt(v_t) + eps)."""
    projected = jax.tree.map(lambda g, p: project(g, p) if is_matrix(g) else g, grads, projectors)
    mu = update_moment(projected, state.mu, b1, 1)
    nu = update_moment(projected, state.nu, b2, 2)
    return projected, mu, nu, jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)


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


def full_rank_directions(full_rank, grads, projectors, projected, adam, scaled_norm):
    """(the direction, the limiter's norms): full_rank(G_t, P, R_t, N_t, ||S_{t-1}||)
    gives (the step, ||S_t||) of each matrix; every other leaf steps along N_t (AdamW)
    and keeps its norm."""
    leaves, treedef = jax.tree.flatten(grads)
    pairs = [
        full_rank(g, p, r, n, prev) if is_matrix(g) else (n, prev)
        for g, p, r, n, prev in zip(
            leaves,
            treedef.flatten_up_to(projectors),
            treedef.flatten_up_to(projected),
            treedef.flatten_up_to(adam),
            treedef.flatten_up_to(scaled_norm),
            strict=True,
        )
    ]
    direction = treedef.unflatten([pair[0] for pair in pairs])
    return direction, treedef.unflatten([pair[1] for pair in pairs])


def step_then_decay(direction, params, eta, lr, weight_decay, count, mask):
    """The updates of theta' = theta_{t-1} - eta_t * direction followed by the decoupled
    decay of the stepped params, theta_t = theta' - lr_t * wd_t * theta' (on the leaves
    `mask` selects): the order of apollo-torch's APOLLOAdamW and pytorch-optimizer's
    Fira, where AdamW decays before its step."""
    stepped = jax.tree.map(lambda d: -jnp.asarray(eta, d.dtype) * d, direction)
    moved = jax.tree.map(lambda p, s: p + s, params, stepped)
    zeros = jax.tree.map(jnp.zeros_like, stepped)
    decay = with_weight_decay(zeros, moved, weight_decay, count, mask)
    return jax.tree.map(lambda s, d: s - lr * d, stepped, decay)


def next_low_rank(state, mu, nu, projectors, scaled_norm):
    """The state after a step: count + 1, the moments and norms in the state's dtypes."""
    return type(state)(
        count=increment(state.count),
        mu=cast_like(mu, state.mu),
        nu=cast_like(nu, state.nu),
        projector=projectors,
        scaled_norm=cast_like(scaled_norm, state.scaled_norm),
    )


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
    check_projection(rank, update_proj_gap)

    def shapes(p):
        """(P, R_t) shapes of one matrix leaf."""
        m, n = p.shape
        return low_rank_shapes(p.shape, min(rank, m, n))

    def init(params):
        return init_low_rank(FiraState, params, shapes)

    def refreshed(g, projector, count):
        """P of one matrix leaf: the top singular vectors of G_t at a refresh."""
        m, n = g.shape
        r = min(rank, m, n)

        def top_singular_vectors():
            u, _, vh = jnp.linalg.svd(g.astype(jnp.float32), full_matrices=False)
            return (vh[:r, :] if m >= n else u[:, :r]).astype(projector.dtype)

        refresh = (count == 0) | ((count + 1) % update_proj_gap == 0)
        return jax.lax.cond(refresh, top_singular_vectors, lambda: projector)

    def project_back(x, p, g):
        return scale * (x @ p if g.shape[0] >= g.shape[1] else p @ x)

    def update(grads, state, params=None, **extra):
        check_state(state, FiraState)
        del extra
        require_params("fira", params)
        check_same_tree(grads, params, "grads", "params")
        projectors = jax.tree.map(
            lambda g, p: refreshed(g, p, state.count) if is_matrix(g) else p, grads, state.projector
        )
        projected, mu, nu, adam = low_rank_adam(grads, projectors, state, b1, b2, eps)

        def full_rank(g, p, r, n, previous):
            """(the step B(N_t) + S_t, the limiter's ||S_t||) of one matrix leaf."""
            factor = channel_ratio(n, r, rows=g.shape[0] >= g.shape[1])
            residual = (g - project_back(r, p, g)) * factor
            residual, norm = limit_norm_growth(residual, previous, state.count == 0)
            return project_back(n, p, g) + residual, norm

        direction, scaled_norm = full_rank_directions(
            full_rank, grads, projectors, projected, adam, state.scaled_norm
        )
        t = increment(state.count)
        lr = value_at(learning_rate, state.count)
        eta = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        updates = step_then_decay(direction, params, eta, lr, weight_decay, state.count, mask)
        return updates, next_low_rank(state, mu, nu, projectors, scaled_norm)

    return Optimizer(init, update)


REGISTRY = {
    # Fira runs at AdamW's learning rates (the paper's LLaMA runs: 1e-2 and below).
    # Skipped on problems without a matrix (then it would be AdamW).
    "fira": OptimizerSpec(
        fira,
        LR_GRID,
        matrix_only=True,
        search_space=LOW_RANK_SPACE,
        default_learning_rate=1e-3,  # pytorch-optimizer's Fira
        reference="pytorch-optimizer 4.1.0 Fira",
    ),
}
__all__ = ["FiraState", "channel_ratio", "fira", "limit_norm_growth"]
