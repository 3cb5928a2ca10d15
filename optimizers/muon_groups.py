"""What the Muon relatives of pytorch_optimizer share: their split of the leaves into an
orthogonalised group (every leaf of rank 2 or more, seen as a matrix of its first axis
against the others) and an AdamW group (vectors and scalars), their Newton-Schulz call,
their shape factor of the learning rate, their weight decay and their AdamW group.

The orthogonalisation itself is `optimizers.muon.orthogonalize_via_newton_schulz`; this
module only feeds it as pytorch_optimizer's `zero_power_via_newton_schulz_5` is fed: the
matrix divided by max(||X||_F, eps) (not ||X||_F + eps), and one coefficient triple per
step, the last triple repeated where a schedule has fewer rows than steps.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.adam import adamw
from optimizers.base import Optimizer, check_nonnegative, check_unit_interval, with_weight_decay
from optimizers.muon import NS_COEFFS_PRESETS, orthogonalize_via_newton_schulz
from optimizers.registry import WEIGHT_DECAY_OR_OFF, Range

# pytorch_optimizer's names of two of muon.py's presets.
PRESET_ALIASES = {"original": "standard", "quintic": "dion"}
# The floor of the norm the matrix is divided by before the iterations.
NS_EPS = 1e-7
# What the rules of both groups tune besides their momenta: the matrices' decay and the
# AdamW group's learning rate.
GROUPS_SPACE = {
    "weight_decay": WEIGHT_DECAY_OR_OFF,
    "adamw_learning_rate": Range(1e-5, 1e-1, "log"),
}


def newton_schulz_schedule(ns_coeffs, ns_steps: int) -> np.ndarray:
    """The (ns_steps, 3) coefficients of each iteration: a preset's rows (muon.py's
    names, or "original" and "quintic"), one triple, or rows of triples; the last row
    is repeated past the end of a shorter schedule and rows past ns_steps are unused."""
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, int | np.integer) or ns_steps < 1:
        raise ValueError(f"ns_steps must be a positive integer, got {ns_steps!r}")
    if isinstance(ns_coeffs, str):
        name = PRESET_ALIASES.get(ns_coeffs.lower(), ns_coeffs.lower())
        if name not in NS_COEFFS_PRESETS:
            names = (*NS_COEFFS_PRESETS, *PRESET_ALIASES)
            raise ValueError(f"ns_coeffs must be one of {names} or numbers, got {ns_coeffs!r}")
        ns_coeffs = NS_COEFFS_PRESETS[name]
    rows = np.atleast_2d(np.asarray(ns_coeffs, np.float64))
    if rows.ndim != 2 or rows.shape[-1] != 3 or rows.shape[0] == 0:
        raise ValueError(f"ns_coeffs must have shape (3,) or (n, 3), got {np.shape(ns_coeffs)}")
    return rows[np.minimum(np.arange(ns_steps), rows.shape[0] - 1)]


def as_matrix(leaf):
    """The leaf as the matrix pytorch_optimizer orthogonalises: its first axis by the rest."""
    return leaf.reshape(leaf.shape[0], -1)


def orthogonalize(x, schedule: np.ndarray, eps: float = NS_EPS):
    """Newton-Schulz iterations on the matrix view of x, returned in that (2-D) view.

    X_0 = X / max(||X||_F, eps), then X_k = a_k X + (b_k A + c_k A^2) X with A = X X^T,
    a tall X transposed so that A is the smaller Gram matrix.
    """
    matrix = as_matrix(x)
    # norm + max(eps - norm, 0) is max(norm, eps): the floor without a second division.
    shift = jnp.maximum(eps - jnp.linalg.norm(matrix), 0)
    return orthogonalize_via_newton_schulz(matrix, schedule, len(schedule), "frobenius", shift)


def learning_rate_factor(shape, use_adjusted_lr: bool) -> float:
    """The factor of the learning rate of a leaf of `shape` (rows: its first axis):
    0.2 sqrt(max(rows, cols)) (Moonlight, Liu et al. 2025) or sqrt(max(1, rows / cols))
    (Jordan 2024)."""
    rows, cols = shape[0], math.prod(shape[1:])
    if use_adjusted_lr:
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))


def is_matrix(leaf) -> bool:
    """The leaves these rules orthogonalise: rank 2 or more. The others take AdamW."""
    return jnp.ndim(leaf) >= 2


def only(tree, params, matrices: bool):
    """`tree` with the leaves of the other group replaced by None."""
    return jax.tree.map(lambda x, p: x if is_matrix(p) == matrices else None, tree, params)


def merge(matrix_part, other_part):
    """One tree from the two halves made by `only`."""
    return jax.tree.map(
        lambda a, b: b if a is None else a, matrix_part, other_part, is_leaf=lambda x: x is None
    )


def coupled_decay(grads, params, weight_decay, adamw_wd, weight_decouple: bool):
    """The gradients with wd * params added (the matrices' wd, the others' adamw_wd) where
    the decay is coupled (an L2 penalty); unchanged where it is decoupled."""
    if weight_decouple:
        return grads
    matrices = with_weight_decay(
        only(grads, params, True), only(params, params, True), weight_decay, 0
    )
    others = with_weight_decay(only(grads, params, False), only(params, params, False), adamw_wd, 0)
    return merge(matrices, others)


def decoupled_decay(direction: Any, params, weight_decay, weight_decouple: bool):
    """The matrices' direction plus wd * params where the decay is decoupled, so that
    -lr * direction decays them by lr * wd (with the unscaled learning rate)."""
    if not weight_decouple:
        return direction
    return with_weight_decay(direction, only(params, params, True), weight_decay, 0)


def adamw_group(
    learning_rate, b1, b2, eps, weight_decay, weight_decouple: bool, eps_name: str = "adamw_eps"
) -> Optimizer:
    """AdamW over the vectors and scalars: an optimizer of the whole tree whose init and
    update read only the leaves `is_matrix` leaves out (None at the matrices). Its
    arguments are checked under the rules' names (adamw_learning_rate, ..., `eps_name`
    for eps); its decay is AdamW's decoupled one under weight_decouple, else none
    (`coupled_decay` has added it to the gradients)."""
    check_nonnegative("adamw_learning_rate", learning_rate)
    check_unit_interval("adamw_b1", b1)
    check_unit_interval("adamw_b2", b2)
    check_nonnegative(eps_name, eps)
    check_nonnegative("adamw_weight_decay", weight_decay)
    adam = adamw(learning_rate, b1, b2, eps, 0.0, None, weight_decay if weight_decouple else 0.0)

    def init(params):
        return adam.init(only(params, params, False))

    def update(grads, state, params):
        return adam.update(only(grads, params, False), state, only(params, params, False))

    return Optimizer(init, update)


def unzip(pairs):
    """Two trees from a tree of pairs: the matrices' (step, moment) pairs split."""
    is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
    first = jax.tree.map(lambda pair: pair[0], pairs, is_leaf=is_pair)
    return first, jax.tree.map(lambda pair: pair[1], pairs, is_leaf=is_pair)
