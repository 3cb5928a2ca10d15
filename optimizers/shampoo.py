"""Shampoo: one Kronecker factor of preconditioning per tensor axis (Gupta et al., 2018)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    increment,
    not_supported,
    require_params,
    state_dtype,
    value_at,
    zeros_like,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, Choice, OptimizerSpec, Range, log_grid


class ShampooState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    momentum_buffer: Any  # the previous preconditioned step
    preconditioners: Any  # per leaf, a tuple of one d_i x d_i statistic per axis
    inverse_roots: Any  # per leaf, the tuple of their inverse (2k)-th roots


def inverse_root(matrix, power):
    """matrix^(-1/power) of a symmetric positive definite matrix, by its SVD (computed in
    float32 at least)."""
    u, s, vh = jnp.linalg.svd(matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32)))
    return ((u * s[None, :] ** (-1.0 / power)) @ vh).astype(matrix.dtype)


def shampoo(
    learning_rate: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    preconditioning_compute_steps: int = 1,
    matrix_eps: float = 1e-6,
    maximize: bool = False,
) -> Optimizer:
    r"""Shampoo (Gupta, Koren & Singer, 2018): the gradient of an order-k tensor leaf is
    preconditioned along every axis i by H_i^(-1/(2k)), H_i the sum of its unfoldings'
    outer products.

    For step t = 1, 2, ... with gradient g_t (a matrix: H_0 = L, H_1 = R):

        g_t     = g_t + momentum * (D_{t-1} - g_t)           (D_0 = g_1)
        g_t     = g_t + wd * theta_{t-1}                      (coupled decay, the default)
        H_i     = H_i + unfold_i(g_t) unfold_i(g_t)^T        (H_i = matrix_eps * I at first)
        D_t     = g_t x_0 H_0^(-1/2k) x_1 ... x_{k-1} H_{k-1}^(-1/2k)
                                       (mode products; L^(-1/4) g R^(-1/4) for a matrix)
        theta_t = theta_{t-1} - lr_t * D_t

    The inverse roots (by SVD) are recomputed every `preconditioning_compute_steps` steps
    and are 0 before the first recomputation. A scalar leaf takes D_t = g_t. With
    weight_decouple=True the decay is theta *= 1 - lr_t * wd (1 - wd with fixed_decay)
    instead. Arguments and defaults as `pytorch_optimizer.Shampoo` (lr named
    learning_rate), which optax lacks, except maximize=True, not supported.

    Reference: Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
    Optimization", ICML 2018.
    """
    not_supported("maximize", maximize, False)
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("matrix_eps", matrix_eps)
    if preconditioning_compute_steps < 1:
        raise ValueError(
            f"preconditioning_compute_steps must be >= 1, got {preconditioning_compute_steps}"
        )

    def init(params):
        return ShampooState(
            count=jnp.zeros([], jnp.int32),
            momentum_buffer=zeros_like(params),
            preconditioners=jax.tree.map(
                lambda p: tuple(
                    matrix_eps * jnp.eye(d, dtype=state_dtype(p.dtype)) for d in p.shape
                ),
                params,
            ),
            inverse_roots=jax.tree.map(
                lambda p: tuple(jnp.zeros((d, d), state_dtype(p.dtype)) for d in p.shape), params
            ),
        )

    def leaf_step(g, buffer, p, statistics, roots, t, lr):
        """(theta_t - theta_{t-1}, D_t, statistics, roots) of one leaf."""
        g = g + momentum * (jnp.where(t == 1, g, buffer) - g)
        if not weight_decouple:
            g = g + weight_decay * p
        refresh = t % preconditioning_compute_steps == 0
        new_statistics, new_roots, direction = [], [], g
        for axis, (h, root) in enumerate(zip(statistics, roots, strict=True)):
            unfolded = jnp.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)
            h = h + unfolded @ unfolded.T
            root = jax.lax.cond(
                refresh, lambda h=h: inverse_root(h, 2 * g.ndim), lambda root=root: root
            )
            # The mode-axis product: every fibre along `axis` multiplied by the root.
            direction = jnp.moveaxis(jnp.tensordot(root, direction, axes=([1], [axis])), 0, axis)
            new_statistics.append(h)
            new_roots.append(root)
        decay = 0.0
        if weight_decouple:
            decay = weight_decay * (1.0 if fixed_decay else lr) * p
        return -lr * direction - decay, direction, tuple(new_statistics), tuple(new_roots)

    def update(grads, state, params=None, **extra):
        del extra
        require_params("shampoo", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        lr = value_at(learning_rate, state.count)
        leaves, treedef = jax.tree.flatten(params)
        per_leaf = [
            leaf_step(g, b, p, h, r, t, jnp.asarray(lr, state_dtype(p.dtype)))
            for g, b, p, h, r in zip(
                treedef.flatten_up_to(grads),
                treedef.flatten_up_to(state.momentum_buffer),
                leaves,
                treedef.flatten_up_to(state.preconditioners),
                treedef.flatten_up_to(state.inverse_roots),
                strict=True,
            )
        ]
        updates, buffer, statistics, roots = (
            jax.tree.unflatten(treedef, [leaf[i] for leaf in per_leaf]) for i in range(4)
        )
        return updates, ShampooState(
            count=t, momentum_buffer=buffer, preconditioners=statistics, inverse_roots=roots
        )

    return Optimizer(init, update)


REGISTRY = {
    # Shampoo's step is AdaGrad-like (scale-free in the gradient); the paper uses
    # learning rates 0.1 to 1 with momentum 0.9. Its inverse roots are recomputed every
    # step, as in the paper's algorithm: with roots 10 steps old, a gradient outside the
    # span of the statistics they were taken from is scaled by up to matrix_eps^(-1/2)
    # (1000 for a vector leaf), and every setting diverged on every problem. Refitting
    # less often is distributed_shampoo's business (grafting keeps its step sized).
    # Momentum is none (the factory's default) or 1 - momentum from 0.5 down to 1e-3.
    "shampoo": OptimizerSpec(
        shampoo,
        log_grid(1e-3, 1.0),
        hparams={"momentum": 0.9},
        search_space={
            "momentum": Choice((0.0, 0.5, 0.9, 0.95, 0.99, 0.999)),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
            "matrix_eps": Range(1e-8, 1e-2),
        },
        reference="pytorch-optimizer 4.1.0 Shampoo",
    ),
}
__all__ = ["ShampooState", "shampoo"]
