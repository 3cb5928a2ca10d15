"""PSGD Kron: SGD preconditioned by Kronecker factors fitted by their own criterion (Li, 2018)."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    zeros_like,
)
from optimizers.noisy_sgd import as_key
from optimizers.registry import LR_GRID, MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec

MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")
# Fixed by pytorch_optimizer.Kron (its `precondition_lr` and `precondition_init_scale`
# defaults, which its constructor does not take), and its eps: bfloat16's smallest normal.
PRECONDITION_LR = 0.1
PRECONDITION_INIT_SCALE = 1.0
EPS = float(jnp.finfo(jnp.bfloat16).tiny)
HIGHEST = jax.lax.Precision.HIGHEST


class KronState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    rng_key: jax.Array  # typed PRNG key, split once per step
    update_counter: jax.Array  # int32 steps since the preconditioner was last fitted
    momentum_buffer: Any  # m: moving average of the gradients
    preconditioners: Any  # per leaf, a tuple of one factor Q_i per axis (a diagonal or
    # an upper triangular matrix); a scalar leaf has one scalar factor


def precondition_update_prob_schedule(
    max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001, flat_start: int = 500
) -> Callable[[jax.Array], jax.Array]:
    """The probability of fitting the preconditioner at step count n (float32):
    clip(max_prob * exp(-decay * (n - flat_start)), min_prob, max_prob), as
    pytorch_optimizer's schedule of the same name (Kron's default)."""

    def schedule(count):
        n = jnp.asarray(count).astype(jnp.float32)
        prob = max_prob * jnp.exp(-decay * (n - flat_start))
        return jnp.clip(prob, min_prob, max_prob).astype(jnp.float32)

    return schedule


def _diagonal_axes(shape, max_size_triangular, min_ndim_triangular, memory_save_mode):
    """For each axis of a leaf of `shape`, whether its factor is a diagonal (a vector)
    rather than an upper triangular matrix, as pytorch_optimizer chooses."""
    if memory_save_mode is None:
        forced = [False] * len(shape)
    elif memory_save_mode == "all_diag":
        forced = [True] * len(shape)
    else:
        forced = [False] * len(shape)
        largest = sorted(shape)
        if memory_save_mode == "one_diag" or (len(shape) >= 2 and largest[-1] > largest[-2]):
            forced[int(np.argsort(shape)[::-1][0])] = True
    return tuple(
        size == 1 or size > max_size_triangular or len(shape) < min_ndim_triangular or diag
        for size, diag in zip(shape, forced, strict=True)
    )


def _mode_product(matrix, x, axis):
    """x multiplied along `axis` by `matrix`: y[.., a, ..] = sum_b matrix[a, b] x[.., b, ..]."""
    return jnp.moveaxis(jnp.tensordot(matrix, x, axes=([1], [axis]), precision=HIGHEST), 0, axis)


def _along(vector, x, axis):
    """`vector` shaped to broadcast along `axis` of x."""
    return vector.reshape([-1 if i == axis else 1 for i in range(x.ndim)])


def _solve_right(x, q, axis):
    """x multiplied along `axis` by inv(q)^T, i.e. each fibre along `axis` as a row vector
    times inv(q), by a triangular solve (upper q) in float32 at least."""
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    moved = jnp.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1]).astype(dtype)
    solved = jax.lax.linalg.triangular_solve(q.astype(dtype), rows, left_side=False, lower=False)
    return jnp.moveaxis(solved.reshape(moved.shape).astype(x.dtype), -1, axis)


def _unfolded_gram(x, axis):
    """unfold_axis(x) unfold_axis(x)^T: the d x d Gram matrix of the fibres along `axis`."""
    unfolded = jnp.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return jnp.matmul(unfolded, unfolded.T, precision=HIGHEST)


def norm_lower_bound(a):
    """A lower bound of the spectral norm of a symmetric matrix: its largest entry times
    the norm of a unit vector built from its largest row (or column), mapped by it, as
    pytorch_optimizer's `norm_lower_bound` computes it (ties go to the first index)."""
    tiny = jnp.finfo(a.dtype).tiny
    max_abs = jnp.max(jnp.abs(a))
    a = a / jnp.where(max_abs > 0, max_abs, 1.0)
    aa = a * a
    column_sums, row_sums = jnp.sum(aa, axis=0), jnp.sum(aa, axis=1)
    i, j = jnp.argmax(column_sums), jnp.argmax(row_sums)
    x0 = jnp.matmul(a[:, i], a, precision=HIGHEST)
    bound0 = jnp.linalg.norm(
        jnp.matmul(x0 / jnp.maximum(jnp.linalg.norm(x0), tiny), a.T, precision=HIGHEST)
    )
    x1 = jnp.matmul(a, a[j, :], precision=HIGHEST)
    bound1 = jnp.linalg.norm(
        jnp.matmul(a.T, x1 / jnp.maximum(jnp.linalg.norm(x1), tiny), precision=HIGHEST)
    )
    return max_abs * jnp.where(column_sums[i] > row_sums[j], bound0, bound1)


def _balanced(qs):
    """The factors rescaled to equal largest entries (their geometric mean); the
    preconditioner, their Kronecker product, is unchanged."""
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in qs])
    geometric_mean = jnp.prod(norms) ** (1 / len(qs))
    scales = geometric_mean / norms
    return tuple(q * scales[i] for i, q in enumerate(qs))


def _fitted(qs, v, g):
    """One step of the preconditioner fit on the pair (v, g), each factor in turn."""
    if g.ndim == 0:
        (q,) = qs
        a, b = q * g, v / q
        term1, term2 = a * a, b * b
        return (q - (term1 - term2) * PRECONDITION_LR * q / (jnp.abs(term1 + term2) + EPS),)
    a, b = g, v
    for axis, q in enumerate(qs):
        if q.ndim < 2:
            a, b = a * _along(q, a, axis), b / _along(q, b, axis)
        else:
            a, b = _mode_product(q, a, axis), _solve_right(b, q, axis)
    new_qs = []
    for axis, q in enumerate(qs):
        if q.ndim < 2:
            others = tuple(i for i in range(g.ndim) if i != axis)
            term1, term2 = jnp.sum(a * a, axis=others), jnp.sum(b * b, axis=others)
            step = (term1 - term2) * PRECONDITION_LR * q / (jnp.max(jnp.abs(term1 + term2)) + EPS)
        else:
            term1, term2 = _unfolded_gram(a, axis), _unfolded_gram(b, axis)
            step = jnp.triu((term1 - term2) * PRECONDITION_LR)
            step = step / (norm_lower_bound(term1 + term2) + EPS)
            step = jnp.matmul(step, q, precision=HIGHEST)
        new_qs.append(q - step)
    return tuple(new_qs)


def _preconditioned(qs, g):
    """P g = (Q^T Q along every axis) g: q^2 g for diagonal factors."""
    if g.ndim == 0:
        (q,) = qs
        return q * q * g
    for axis, q in enumerate(qs):
        if q.ndim < 2:
            g = g * _along(q * q, g, axis)
        else:
            g = _mode_product(q.T, _mode_product(q, g, axis), axis)
    return g


def _as_dtype(name, dtype):
    """A floating dtype from `dtype`, or None; ValueError naming `name` otherwise."""
    if dtype is None:
        return None
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as error:
        raise ValueError(f"{name} must be a floating dtype or None, got {dtype!r}") from error
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype or None, got {dtype!r}")
    return dtype


def _check_probability(name, value):
    """Raises ValueError naming `name` when a concrete `value` lies outside [0, 1]."""
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return
    known = np.asarray(value)
    if not np.all((known >= 0) & (known <= 1)):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def kron(
    learning_rate: ScalarOrSchedule = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    pre_conditioner_update_probability: float | Callable[[jax.Array], jax.Array] | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precondition_update: bool = True,
    mu_dtype: Any = None,
    precondition_dtype: Any = jnp.float32,
    balance_prob: float = 0.01,
    maximize: bool = False,
    *,
    key: jax.Array | int | None = None,
) -> Optimizer:
    r"""PSGD Kron (Li, 2018): momentum SGD preconditioned by P = Q^T Q, Q a Kronecker
    product of one factor per tensor axis, fitted to the gradients by PSGD's own
    criterion on a random probe.

    For step t = 1, 2, ... with gradient g_t of a leaf (P and Q acting on it by
    mode products along its axes; Q_i upper triangular, or diagonal for an axis of size
    1 or above max_size_triangular, for every axis of a leaf of rank below
    min_ndim_triangular (vectors and scalars by default) and as memory_save_mode says),
    wd decaying leaves of rank >= 2 only:

        g_t     = g_t + wd * theta_{t-1}              (weight_decouple=False)
        m_t     = momentum * m_{t-1} + (1 - momentum) * g_t
        h_t     = m_t / (1 - momentum^t)       (g_t with momentum_into_precondition_update=False)

    then, on the steps the schedule picks (below), with a standard normal probe v_t:

        a      = Q h_t,   b = Q^-T v_t                        (b by triangular solves)
        Q_i    = Q_i - 0.1 * triu(A_i - B_i) / ||A_i + B_i|| Q_i    (triangular Q_i)
        Q_i    = Q_i - 0.1 * (A_i - B_i) / max|A_i + B_i| * Q_i     (diagonal Q_i)

    with A_i = unfold_i(a) unfold_i(a)^T and B_i likewise of b (their diagonals for a
    diagonal Q_i), ||.|| a lower bound of the spectral norm, and all factors updated from
    the same a and b. Then

        d_t     = P h_t = Q^T Q h_t
        d_t     = d_t * min(1, 1.1 / (rms(d_t) + 1e-6))
        theta_t = theta_{t-1} - lr_t * (d_t + wd * theta_{t-1})   (+ wd term: weight_decouple)

    The fit runs at step t when p_t > 0 and k_t >= 1 / p_t, k_t counting the steps since
    the last fit (k_t = 1 just after one), p_t = pre_conditioner_update_probability: a
    number, a function of the count of steps taken, or None for
    `precondition_update_prob_schedule()` (1 for 500 steps, then decaying to 0.03). On a
    fitting step, with probability balance_prob, the factors of a leaf of rank >= 2 are
    first rescaled to equal largest entries (P unchanged). The factors start at the
    identity, are kept in precondition_dtype (None: the params' dtype) and the momentum
    in mu_dtype (None: the params' dtype).

    Randomness: each step splits the state's key into (next key, balance key, probe
    key); the balance draw is `jax.random.uniform(balance key, (), float32)`, and the
    probe key is split into one key per leaf (`jax.tree.leaves` order) for
    `jax.random.normal(leaf key, leaf shape, precondition dtype)`. `key` is a PRNG key or
    an integer seed; None means seed 0.

    Arguments and defaults as `pytorch_optimizer.Kron` (lr named learning_rate), which
    optax lacks; there the probe and the balance draw come from torch's and NumPy's
    global generators, here from `key`, and the triangular solves run in float32 at
    least (pytorch_optimizer: always in float32). Complex params are not supported.

    References: Li, "Preconditioned Stochastic Gradient Descent", IEEE TNNLS 29(5), 2018
    (arXiv:1512.04202); Li, "Preconditioner on Matrix Lie Group for SGD", ICLR 2019
    (arXiv:1809.10232), for the Kronecker-factored preconditioners fitted on a group.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_nonnegative("weight_decay", weight_decay)
    _check_probability("pre_conditioner_update_probability", pre_conditioner_update_probability)
    _check_probability("balance_prob", balance_prob)
    for name, value, low in (
        ("max_size_triangular", max_size_triangular, 1),
        ("min_ndim_triangular", min_ndim_triangular, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if memory_save_mode not in MEMORY_SAVE_MODES:
        raise ValueError(
            f"memory_save_mode must be one of {MEMORY_SAVE_MODES}, got {memory_save_mode!r}"
        )
    mu_dtype = _as_dtype("mu_dtype", mu_dtype)
    precondition_dtype = _as_dtype("precondition_dtype", precondition_dtype)
    key = 0 if key is None else key
    if pre_conditioner_update_probability is None:
        pre_conditioner_update_probability = precondition_update_prob_schedule()

    def q_dtype(p):
        return state_dtype(p.dtype) if precondition_dtype is None else precondition_dtype

    def initial_factors(p):
        if jnp.iscomplexobj(p):
            raise NotImplementedError("kron does not support complex params")
        dtype = q_dtype(p)
        if p.ndim == 0:
            return (jnp.full((), PRECONDITION_INIT_SCALE, dtype),)
        scale = PRECONDITION_INIT_SCALE ** (1.0 / p.ndim)
        diagonal = _diagonal_axes(
            p.shape, max_size_triangular, min_ndim_triangular, memory_save_mode
        )
        return tuple(
            jnp.full((size,), scale, dtype) if diag else scale * jnp.eye(size, dtype=dtype)
            for size, diag in zip(p.shape, diagonal, strict=True)
        )

    def init(params):
        return KronState(
            count=jnp.zeros([], jnp.int32),
            rng_key=as_key(key),
            update_counter=jnp.zeros([], jnp.int32),
            momentum_buffer=zeros_like(params, mu_dtype),
            preconditioners=jax.tree.map(initial_factors, params),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, KronState)
        del extra
        require_params("kron", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)

        prob = pre_conditioner_update_probability
        prob = jnp.asarray(prob(state.count) if callable(prob) else prob)
        counter = state.update_counter + 1
        do_update = jnp.logical_and(prob > 0, counter >= 1 / prob)
        update_counter = jnp.where(do_update, 0, counter).astype(jnp.int32)
        rng_key, balance_key, probe_key = jax.random.split(state.rng_key, 3)
        balance = jnp.logical_and(
            jax.random.uniform(balance_key, (), jnp.float32) < balance_prob, do_update
        )
        correction1 = 1 - momentum**t

        leaves, treedef = jax.tree.flatten(params)
        probe_keys = jax.random.split(probe_key, len(leaves))
        grads = treedef.flatten_up_to(grads)
        buffers = treedef.flatten_up_to(state.momentum_buffer)
        factors = treedef.flatten_up_to(state.preconditioners)
        fit_inputs, new_buffers = [], []
        for g, p, m, qs in zip(grads, leaves, buffers, factors, strict=True):
            dtype = state_dtype(p.dtype)
            g, p = g.astype(dtype), p.astype(dtype)
            if maximize:
                g = -g
            if p.ndim >= 2 and not weight_decouple:
                g = g + weight_decay * p
            m = momentum * m + (1 - momentum) * g
            debiased = (m / correction1).astype(qs[0].dtype)
            target = debiased if momentum_into_precondition_update else g.astype(qs[0].dtype)
            new_buffers.append(m.astype(state_dtype(p.dtype) if mu_dtype is None else mu_dtype))
            fit_inputs.append((debiased, target))

        def fit_all(factors):
            fitted = []
            for k, qs, (_, target) in zip(probe_keys, factors, fit_inputs, strict=True):
                if target.ndim > 1:
                    qs = jax.lax.cond(balance, _balanced, lambda qs: qs, qs)
                probe = jax.random.normal(k, target.shape, qs[0].dtype)
                fitted.append(_fitted(qs, probe, target))
            return fitted

        old_factors = list(factors)
        factors = jax.lax.cond(do_update, fit_all, list, old_factors)
        factors = [cast_like(new, old) for new, old in zip(factors, old_factors, strict=True)]

        directions = []
        for qs, (debiased, _), p in zip(factors, fit_inputs, leaves, strict=True):
            dtype = state_dtype(p.dtype)
            d = _preconditioned(qs, debiased).astype(dtype)
            d = d * jnp.minimum(1.1 / (jnp.sqrt(jnp.mean(d * d)) + 1e-6), 1.0)
            if p.ndim >= 2 and weight_decouple:
                d = d + weight_decay * p.astype(dtype)
            directions.append(d)
        updates = descend(learning_rate, state.count, jax.tree.unflatten(treedef, directions))
        return updates, KronState(
            count=t,
            rng_key=rng_key,
            update_counter=update_counter,
            momentum_buffer=cast_like(
                jax.tree.unflatten(treedef, new_buffers), state.momentum_buffer
            ),
            preconditioners=jax.tree.unflatten(treedef, factors),
        )

    return Optimizer(init, update)


REGISTRY = {
    # Kron's step is normalized (its RMS at most 1.1), so it takes Adam-like learning
    # rates; pytorch_optimizer's default is 1e-3. The benchmark refits the preconditioner
    # on every 10th step: the default schedule refits on every step of the first 500,
    # that is every step of the suite's budgets, at 5x the run time on the MLPs; PSGD
    # refits with probability 0.03 to 0.1 after its warm-up.
    "kron": OptimizerSpec(
        kron,
        LR_GRID,
        hparams={"pre_conditioner_update_probability": 0.1},
        search_space={"momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="pytorch-optimizer 4.1.0 Kron",
    ),
}
__all__ = ["KronState", "kron", "precondition_update_prob_schedule"]
