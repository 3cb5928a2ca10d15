"""SPlus: sign descent in the eigenbases of Shampoo's two side statistics, evaluated at an
average of the iterates."""

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
    require_params,
    state_dtype,
    update_moment,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import (
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY,
    OptimizerSpec,
    Range,
    log_grid,
)


class SPlusState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum of the gradients
    ema: Any  # bias-corrected exponential average of the iterates: the evaluation point
    sides: Any  # per matrix: (L, R), the averages of G G^T and G^T G (None: no basis kept)
    bases: Any  # per matrix: (Q_L, Q_R), their eigenvectors at the last refresh


def splus_eval_params(state: SPlusState, params):
    """The bias-corrected average of the iterates, E_t / (1 - ema_rate^t), where SPlus is
    evaluated; the iterate itself before the first step."""
    return jax.tree.map(lambda p, e: jnp.where(state.count > 0, e, p), params, state.ema)


def splus(
    learning_rate: ScalarOrSchedule = 0.1,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 1e-2,
    ema_rate: float = 0.999,
    inverse_steps: int = 100,
    nonstandard_constant: float = 1e-3,
    max_dim: int = 10000,
    eps: float = 1e-30,
    *,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""SPlus (Frans et al., 2025): for each matrix, the sign of its momentum in the
    eigenbases of Shampoo's left and right statistics, rotated back; a sign step for the
    other leaves. The model is evaluated at an average of the iterates.

    For step t = 1, 2, ... and an m x n matrix W with gradient G_t (Q_L = I, Q_R = I
    until the first refresh):

        M_t = b1 * M_{t-1} + (1 - b1) * G_t
        L_t = b2 * L_{t-1} + (1 - b2) * G_t G_t^T
        R_t = b2 * R_{t-1} + (1 - b2) * G_t^T G_t
        U_t = Q_L sign(Q_L^T M_t Q_R) Q_R^T                (with the bases of before step t)
        Q_L, Q_R = eigenvectors of L_t + eps I, R_t + eps I   (t = 1 or t % inverse_steps = 0)
        W'_t = W_{t-1} - lr_t * s * U_t,                  s = 2 / (m + n)
        E_t = ema_rate * E_{t-1} + (1 - ema_rate) * W'_t       (E_0 = 0)
        W_t = (1 - lr_t * s * wd) * W'_t                  (fixed_decay: (1 - wd) * W'_t)

    A side of dimension >= max_dim keeps no basis (its Q is I and its statistic is not
    kept). Every other leaf (and a matrix with a dimension > max_dim) takes U_t =
    sign(M_t) with s = nonstandard_constant. weight_decouple=False adds wd * W_{t-1} to
    the gradient instead of the last line. The evaluation point is E_t / (1 - ema_rate^t)
    (`splus_eval_params`), which the state keeps rather than E_t, by the recursion
    Ehat_t = Ehat_{t-1} + (1 - ema_rate) / (1 - ema_rate^t) * (W'_t - Ehat_{t-1}), so that
    no power of ema_rate is kept. The sign is invariant to the eigenvectors' signs, so the
    eigensolver's choice of them does not matter.

    Follows pytorch_optimizer 4.1.0's SPlus. Its eigendecompositions run in float32; these
    in the parameters' dtype, at least float32.

    Reference: Frans, Levine and Abbeel, "A Stable Whitening Optimizer for Efficient
    Neural Network Training", 2025 (arXiv:2506.07254).
    """
    if isinstance(inverse_steps, bool) or not isinstance(inverse_steps, int) or inverse_steps < 1:
        raise ValueError(f"inverse_steps must be a positive integer, got {inverse_steps!r}")
    if isinstance(max_dim, bool) or not isinstance(max_dim, int) or max_dim < 1:
        raise ValueError(f"max_dim must be a positive integer, got {max_dim!r}")
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("weight_decay", weight_decay)
    check_unit_interval("ema_rate", ema_rate)
    check_nonnegative("nonstandard_constant", nonstandard_constant)
    check_nonnegative("eps", eps)

    def whitened(p) -> bool:
        return p.ndim == 2 and max(p.shape) <= max_dim

    def factor(p):
        return 2.0 / sum(p.shape) if whitened(p) else nonstandard_constant

    def side_shapes(p):
        if p.ndim != 2:
            return None
        return tuple(d if d < max_dim else None for d in p.shape)

    def init(params):
        dtype = lambda p: state_dtype(p.dtype)  # noqa: E731

        def sides(p):
            shapes = side_shapes(p)
            if shapes is None:
                return None
            return tuple(None if d is None else jnp.zeros((d, d), dtype(p)) for d in shapes)

        def bases(p):
            shapes = side_shapes(p)
            if shapes is None:
                return None
            return tuple(None if d is None else jnp.eye(d, dtype=dtype(p)) for d in shapes)

        return SPlusState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params),
            ema=zeros_like(params),
            sides=jax.tree.map(sides, params),
            bases=jax.tree.map(bases, params),
        )

    def eigenvectors(side):
        dtype = jnp.promote_types(side.dtype, jnp.float32)
        shifted = side.astype(dtype) + eps * jnp.eye(side.shape[0], dtype=dtype)
        return jnp.linalg.eigh(shifted)[1].astype(side.dtype)

    def matrix_step(m, g, sides, bases, t):
        """U_t, the new statistics and the bases for the next step, of one matrix."""
        (left, right), (q_left, q_right) = sides, bases
        rotated = m if q_left is None else q_left.T @ m
        rotated = rotated if q_right is None else rotated @ q_right
        u = jnp.sign(rotated)
        u = u if q_left is None else q_left @ u
        u = u if q_right is None else u @ q_right.T
        if left is not None:
            left = update_moment(g @ g.T, left, b2, 1)
        if right is not None:
            right = update_moment(g.T @ g, right, b2, 1)
        refresh = jnp.logical_or(t == 1, t % inverse_steps == 0)
        q_left, q_right = (
            q if side is None else jax.lax.cond(refresh, eigenvectors, lambda _, q=q: q, side)
            for side, q in ((left, q_left), (right, q_right))
        )
        return u, (left, right), (q_left, q_right)

    def update(grads, state, params=None, **extra):
        del extra
        require_params("splus", params)
        check_state(state, SPlusState)
        check_same_tree(grads, params, "grads", "params")
        if not weight_decouple:
            grads = with_weight_decay(grads, params, weight_decay, state.count)
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        leaves, treedef = jax.tree.flatten(params)
        sides, bases = treedef.flatten_up_to(state.sides), treedef.flatten_up_to(state.bases)
        directions, new_sides, new_bases = [], [], []
        for p, m, g, side, basis in zip(
            leaves,
            treedef.flatten_up_to(mu),
            treedef.flatten_up_to(grads),
            sides,
            bases,
            strict=True,
        ):
            if side is None:
                u = jnp.sign(m)
            else:
                u, side, basis = matrix_step(m, g, side, basis, t)
            directions.append(factor(p) * u)
            new_sides.append(side)
            new_bases.append(basis)
        step = descend(learning_rate, state.count, jax.tree.unflatten(treedef, directions))
        moved = jax.tree.map(lambda p, s: p + s, params, step)
        weight = (1 - ema_rate) / (1 - ema_rate**t)
        ema = jax.tree.map(lambda e, w: e + weight.astype(e.dtype) * (w - e), state.ema, moved)
        updates = step
        if weight_decouple:
            lr = value_at(learning_rate, state.count)
            updates = jax.tree.map(
                lambda s, p, w: s - (1.0 if fixed_decay else lr * factor(p)) * weight_decay * w,
                step,
                params,
                moved,
            )
        new_state = SPlusState(
            count=t,
            mu=cast_like(mu, state.mu),
            ema=cast_like(ema, state.ema),
            sides=cast_like(treedef.unflatten(new_sides), state.sides),
            bases=cast_like(treedef.unflatten(new_bases), state.bases),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # The step of a matrix entry is lr * 2 / (m + n) in the rotated basis, of any other
    # entry lr * 1e-3: the reference's default 0.1 in a grid of four decades around it.
    "splus": OptimizerSpec(
        splus,
        log_grid(1e-3, 10.0),
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "weight_decay": WEIGHT_DECAY,
            "ema_rate": Range(0.9, 0.9999, "one_minus_log"),
        },
        eval_params=splus_eval_params,
        reference="pytorch-optimizer 4.1.0 SPlus",
    ),
}
__all__ = ["SPlusState", "splus", "splus_eval_params"]
