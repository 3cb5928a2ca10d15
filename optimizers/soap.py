"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2025)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_given,
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
from optimizers.registry import EPS, LR_GRID, MOMENTUM, WEIGHT_DECAY, OptimizerSpec

DATA_FORMATS = ("channels_first", "channels_last")
# Added to the diagonal of a statistic before its eigendecomposition, as the reference does.
EIGH_JITTER = 1e-30
HIGHEST = jax.lax.Precision.HIGHEST


class SoapState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # m: moving average of the gradients (in the parameter basis)
    exp_avg_sq: Any  # v: moving average of the squared projected gradients (in the eigenbasis)
    statistics: Any  # per leaf, one d_i x d_i statistic per axis (None: axis not preconditioned)
    eigenbases: Any  # per leaf, the tuple of their (estimated) eigenbases Q_i (None likewise)


def _preconditioned_axes(shape, precondition_1d, max_precondition_dim):
    """Per axis of a leaf of `shape`, whether SOAP keeps a statistic and an eigenbasis for it."""
    if len(shape) == 1 and not precondition_1d:
        return (False,)
    return tuple(d <= max_precondition_dim for d in shape)


def _project(x, bases, backward=False):
    """x x_0 Q_0 x_1 Q_1 ... (forward: Q_i^T along axis i; backward: Q_i), axis by axis
    as the reference does it: contract the leading axis, the result's new axis last."""
    for q in bases:
        if q is None:
            x = jnp.moveaxis(x, 0, -1)
        else:
            x = jnp.tensordot(x, q, axes=([0], [1 if backward else 0]), precision=HIGHEST)
    return x


def _outer(g, axis):
    """unfold_axis(g) unfold_axis(g)^T: g contracted with itself over every other axis."""
    others = [i for i in range(g.ndim) if i != axis]
    return jnp.tensordot(g, g, axes=(others, others), precision=HIGHEST)


def _eigenbasis(h):
    """The eigenvectors of the statistic h, by decreasing eigenvalue (computed in float32
    at least)."""
    wide = h.astype(jnp.promote_types(h.dtype, jnp.float32))
    _, q = jnp.linalg.eigh(
        wide + EIGH_JITTER * jnp.eye(h.shape[0], dtype=wide.dtype), symmetrize_input=False
    )
    return jnp.flip(q, axis=1).astype(h.dtype)


def _power_iteration(statistics, bases, exp_avg_sq):
    """One round of power iteration per axis, Q_i = qr(H_i Q_i) with the columns sorted by
    the estimated eigenvalue diag(Q_i^T H_i Q_i), and v permuted to the new order.

    The QR runs in float32 whatever the leaf's dtype, as the reference runs it."""
    new_bases = []
    for axis, (h, q) in enumerate(zip(statistics, bases, strict=True)):
        if h is None:
            new_bases.append(None)
            continue
        product = jnp.matmul(h, q, precision=HIGHEST)
        estimated = jnp.sum(q * product, axis=0)
        order = jnp.argsort(estimated, descending=True)
        exp_avg_sq = jnp.take(exp_avg_sq, order, axis=axis)
        power_iterate = jnp.take(product, order, axis=1)
        new_q, _ = jnp.linalg.qr(power_iterate.astype(jnp.float32))
        new_bases.append(new_q.astype(power_iterate.dtype))
    return tuple(new_bases), exp_avg_sq


def soap(
    learning_rate: ScalarOrSchedule = 3e-3,
    betas: tuple[float, float] = (0.95, 0.95),
    shampoo_beta: float | None = None,
    weight_decay: float = 1e-2,
    precondition_frequency: int = 10,
    max_precondition_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    correct_bias: bool = True,
    normalize_gradient: bool = False,
    data_format: str = "channels_first",
    eps: float = 1e-8,
    maximize: bool = False,
) -> Optimizer:
    r"""SOAP (Vyas et al., 2025): Adam in the eigenbasis of Shampoo's preconditioner, the
    basis refreshed by one step of power iteration every `precondition_frequency` steps.

    For each axis i of a leaf (both axes of a matrix, none of a scalar, the one of a
    vector only with precondition_1d=True, none longer than max_precondition_dim) SOAP
    keeps a statistic H_i and an orthogonal basis Q_i. With (b1, b2) = betas,
    b_s = shampoo_beta (b2 if None), G x Q the mode products G x_0 Q_0 x_1 Q_1 ...:

        step t = 1: H_i = (1 - b_s) unfold_i(g_1) unfold_i(g_1)^T
                    Q_i = eigenvectors of H_i + 1e-30 I, by decreasing eigenvalue
                    (the parameters do not move; m = v = 0)
        step t > 1, s = t - 1:
            m_t     = b1 * m_{t-1} + (1 - b1) * g_t
            v_t     = b2 * v_{t-1} + (1 - b2) * (g_t x Q^T)^2
            d_t     = ((m_t x Q^T) / (sqrt(v_t) + eps)) x Q
            d_t     = d_t / (rms(d_t) + eps)                          (normalize_gradient)
            a_t     = lr_t * sqrt(1 - b2^s) / (1 - b1^s)              (lr_t without correct_bias)
            theta_t = (theta_{t-1} - a_t * d_t) * (1 - lr_t * wd)
            H_i     = b_s * H_i + (1 - b_s) unfold_i(g_t) unfold_i(g_t)^T
            every precondition_frequency-th s:
                Q_i = qr(H_i Q_i P_i) (in float32),  v_t = v_t permuted by P_i along axis i,
                P_i sorting the columns by decreasing diag(Q_i^T H_i Q_i)

    Axes without a basis take Q_i = I: a scalar leaf, and a vector leaf by default,
    take Adam's step with the same step sizes, so the rule is not matrix-only.
    Arguments and defaults as `pytorch_optimizer.SOAP` (lr named learning_rate), which
    optax lacks, except merge_dims=True, not supported (the reference's dimension
    merging fails on any leaf its small dimensions merge into one); data_format only
    matters with merge_dims. shampoo_beta must lie in [0, 1).

    Reference: Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson & Kakade,
    "SOAP: Improving and Stabilizing Shampoo using Adam", ICLR 2025 (arXiv:2409.11321).
    """
    not_supported("merge_dims", merge_dims, False)
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    check_given("learning_rate", learning_rate)
    check_nonnegative("learning_rate", learning_rate)
    beta1, beta2 = betas
    check_unit_interval("betas", beta1)
    check_unit_interval("betas", beta2)
    shampoo_beta = beta2 if shampoo_beta is None else shampoo_beta
    check_unit_interval("shampoo_beta", shampoo_beta)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("eps", eps)
    for name, value in (
        ("precondition_frequency", precondition_frequency),
        ("max_precondition_dim", max_precondition_dim),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def axes(p):
        return _preconditioned_axes(jnp.shape(p), precondition_1d, max_precondition_dim)

    def init(params):
        def per_axis(p, make):
            dtype = state_dtype(p.dtype)
            return tuple(
                make(d, dtype) if kept else None
                for d, kept in zip(jnp.shape(p), axes(p), strict=True)
            )

        return SoapState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            statistics=jax.tree.map(
                lambda p: per_axis(p, lambda d, t: jnp.zeros((d, d), t)), params
            ),
            # Replaced by the eigenvectors of the first statistics at step 1.
            eigenbases=jax.tree.map(
                lambda p: per_axis(p, lambda d, t: jnp.eye(d, dtype=t)), params
            ),
        )

    def leaf_step(g, m, v, p, statistics, bases, t, lr):
        """(theta_t - theta_{t-1}, m_t, v_t, statistics, bases) of one leaf."""
        g = jnp.asarray(g, m.dtype)
        if maximize:
            g = -g
        first = t == 1
        s = jnp.maximum(t - 1, 1).astype(m.dtype)
        lr = jnp.asarray(lr, m.dtype)

        new_m = m + (1 - beta1) * (g - m)
        projected = _project(g, bases)
        new_v = v + (1 - beta2) * (projected * projected - v)
        direction = _project(_project(new_m, bases) / (jnp.sqrt(new_v) + eps), bases, backward=True)
        if normalize_gradient:
            direction = direction / (jnp.sqrt(jnp.mean(direction * direction)) + eps)
        step_size = lr * jnp.sqrt(1 - beta2**s) / (1 - beta1**s) if correct_bias else lr
        delta = -(step_size * direction) * (1 - lr * weight_decay) - lr * weight_decay * p
        delta = jnp.where(first, jnp.zeros_like(delta), delta)
        new_m = jnp.where(first, m, new_m)
        new_v = jnp.where(first, v, new_v)

        statistics = tuple(
            None if h is None else h + (1 - shampoo_beta) * (_outer(g, axis).astype(h.dtype) - h)
            for axis, h in enumerate(statistics)
        )

        def eigendecompose(v):
            return tuple(None if h is None else _eigenbasis(h) for h in statistics), v

        def keep(v):
            return bases, v

        def refresh(v):
            return jax.lax.cond(
                (t > 1) & ((t - 1) % precondition_frequency == 0),
                lambda v: _power_iteration(statistics, bases, v),
                keep,
                v,
            )

        if any(h is not None for h in statistics):
            bases, new_v = jax.lax.cond(first, eigendecompose, refresh, new_v)
        return delta, new_m, new_v, statistics, bases

    def update(grads, state, params=None, **extra):
        del extra
        require_params("soap", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        lr = value_at(learning_rate, state.count)
        leaves, treedef = jax.tree.flatten(params)
        per_leaf = [
            leaf_step(*args, t, lr)
            for args in zip(
                treedef.flatten_up_to(grads),
                treedef.flatten_up_to(state.exp_avg),
                treedef.flatten_up_to(state.exp_avg_sq),
                leaves,
                treedef.flatten_up_to(state.statistics),
                treedef.flatten_up_to(state.eigenbases),
                strict=True,
            )
        ]
        updates, exp_avg, exp_avg_sq, statistics, bases = (
            jax.tree.unflatten(treedef, [leaf[i] for leaf in per_leaf]) for i in range(5)
        )
        updates = jax.tree.map(lambda u, p: u.astype(state_dtype(p.dtype)), updates, params)
        return updates, SoapState(
            count=t,
            exp_avg=cast_like(exp_avg, state.exp_avg),
            exp_avg_sq=cast_like(exp_avg_sq, state.exp_avg_sq),
            statistics=cast_like(statistics, state.statistics),
            eigenbases=cast_like(bases, state.eigenbases),
        )

    return Optimizer(init, update)


REGISTRY = {
    # Adam-like step sizes (the paper tunes 3e-3 to 1e-2 on language models). Scalars
    # and vectors take Adam's step (precondition_1d=False, the default), so the rule
    # runs on every problem; eigendecompositions cost O(d^3) per axis.
    "soap": OptimizerSpec(
        soap,
        LR_GRID,
        search_space={"shampoo_beta": MOMENTUM, "weight_decay": WEIGHT_DECAY, "eps": EPS},
        reference="pytorch-optimizer 4.1.0 SOAP",
    ),
}
__all__ = ["SoapState", "soap"]
