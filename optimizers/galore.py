"""GaLore: a base optimizer run on low-rank projections of the matrix gradients."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import adam_direction, init_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    descend,
    increment,
    not_supported,
    with_weight_decay,
)
from optimizers.registry import LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range


def _adam_scaling() -> Optimizer:
    """Adam's direction mhat / (sqrt(vhat) + eps) with optax's defaults, no learning rate."""

    def update(grads, state, params=None, **extra):
        del params, extra
        return adam_direction(grads, state, 0.9, 0.999, 1e-8, 0.0, False)

    return Optimizer(lambda params: init_adam(params, None), update)


def _is_matrix(leaf) -> bool:
    """The leaves GaLore projects: rank 2. Every other leaf goes to the base optimizer whole."""
    return leaf.ndim == 2


class GaloreState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    base_optimizer_state: Any  # over the projected gradients (the others whole)
    projector: Any  # P per matrix: m x r (left) or n x r (right); (0, 0) for other leaves


def galore(
    learning_rate: ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: Optimizer | None = None,
    weight_decay: float = 0.0,
    mask: Any | Callable | None = None,
    weight_dimension_numbers: Any = None,
) -> Optimizer:
    r"""GaLore (Zhao et al., 2024): the base optimizer (Adam) sees each m x n gradient
    only through its projection on the top r = min(rank, m, n) singular vectors.

    For step t = 0, 1, ... with gradient G_t of a matrix leaf, with P refreshed every
    `update_proj_gap` steps from the SVD G_t = U S V^T (computed in float32):

        P       = U[:, :r]  if m >= n,  else V[:, :r]          (when t % update_proj_gap == 0)
        R_t     = P^T G_t   if m >= n,  else G_t P             (r x n or m x r)
        N_t     = base_optimizer(R_t)                         (Adam's direction by default)
        D_t     = scale * (P N_t  if m >= n,  else N_t P^T)
        W_t     = W_{t-1} - lr_t * (D_t + wd * W_{t-1})

    The base optimizer's moments live in the low-rank space, which is GaLore's memory
    saving. Leaves of any other rank (vectors, scalars, tensors of rank 3 and more) are
    passed to the base optimizer whole (then D_t = its update, unscaled). `base_optimizer`
    is a scaling (no learning rate, no sign flip); None is Adam with b1 = 0.9,
    b2 = 0.999, eps = 1e-8. `mask` selects the leaves that decay. Same arguments and
    defaults as `optax.contrib.galore`, except weight_dimension_numbers (other axes or
    ranks to project), not supported.

    Reference: Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
    Projection", ICML 2024 (arXiv:2403.03507).
    """
    not_supported("weight_dimension_numbers", weight_dimension_numbers, None)
    if not isinstance(rank, int):
        raise TypeError(f"rank must be an int, got {type(rank).__name__}")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if isinstance(update_proj_gap, int) and update_proj_gap < 1:
        raise ValueError(f"update_proj_gap must be >= 1, got {update_proj_gap}")
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("weight_decay", weight_decay)
    base = _adam_scaling() if base_optimizer is None else base_optimizer

    def shapes(p):
        """(projector, projected gradient) shapes of one leaf; use_left: m >= n."""
        m, n = p.shape
        r = min(rank, m, n)
        return ((m, r), (r, n)) if m >= n else ((n, r), (m, r))

    def init(params):
        projectors = jax.tree.map(
            lambda p: jnp.zeros(shapes(p)[0] if _is_matrix(p) else (0, 0), p.dtype), params
        )
        projected = jax.tree.map(
            lambda p: jnp.zeros(shapes(p)[1], p.dtype) if _is_matrix(p) else jnp.zeros_like(p),
            params,
        )
        return GaloreState(
            count=jnp.zeros([], jnp.int32),
            base_optimizer_state=base.init(projected),
            projector=projectors,
        )

    def refreshed(g, projector, refresh):
        """P for one leaf: the top singular vectors of G_t when refresh is set."""
        if not _is_matrix(g):
            return projector
        m, n = g.shape
        r = min(rank, m, n)

        def top_singular_vectors():
            u, _, vh = jnp.linalg.svd(g.astype(jnp.float32), full_matrices=False)
            return (u[:, :r] if m >= n else vh[:r, :].T).astype(g.dtype)

        return jax.lax.cond(refresh, top_singular_vectors, lambda: projector)

    def project(g, projector):
        """R_t for one leaf (G_t itself off the matrices)."""
        if not _is_matrix(g):
            return g
        m, n = g.shape
        return projector.T @ g if m >= n else g @ projector

    def project_back(n_t, projector, g):
        if not _is_matrix(g):
            return n_t
        m, n = g.shape
        return (scale * (projector @ n_t if m >= n else n_t @ projector.T)).astype(g.dtype)

    def update(grads, state, params=None, **extra):
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        refresh = state.count % update_proj_gap == 0
        projectors = jax.tree.map(lambda g, p: refreshed(g, p, refresh), grads, state.projector)
        projected = jax.tree.map(project, grads, projectors)
        low_rank, base_state = base.update(projected, state.base_optimizer_state, None)
        direction = jax.tree.map(project_back, low_rank, projectors, grads)
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        return descend(learning_rate, state.count, direction), GaloreState(
            count=increment(state.count), base_optimizer_state=base_state, projector=projectors
        )

    return Optimizer(init, update)


REGISTRY = {
    # GaLore runs Adam at its usual learning rates (1e-2 to 1e-3 in the paper's LLaMA
    # pre-training, with scale 0.25); the default grid covers them. Skipped on problems
    # without a matrix (then it would be Adam).
    "galore": OptimizerSpec(
        galore,
        LR_GRID,
        matrix_only=True,
        search_space={"scale": Range(0.05, 2.0), "weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # its base Adam's (Kingma & Ba 2015)
        reference="optax.contrib 0.2.8 galore",
    ),
}
__all__ = ["GaloreState", "galore"]
