"""Muon: momentum orthogonalised by Newton-Schulz iterations, for matrix parameters."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.adam import adamw, check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    debiased_momentum,
    descend,
    increment,
    not_supported,
    require_params,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import LR_GRID, MOMENTUM, SECOND_MOMENT, WEIGHT_DECAY_OR_OFF, OptimizerSpec

# Coefficients (a, b, c) of the quintic x -> a x + b (x x^T) x + c (x x^T)^2 x.
NS_COEFFS_PRESETS = {
    "standard": (3.4445, -4.7750, 2.0315),  # Jordan's, the same at every iteration
    "dion": (  # one triple per iteration, from the Dion optimizer
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    # Polar Express (Amsel et al. 2025): eight triples, each the minimax-optimal quintic
    # for the interval its predecessors leave, with a safety margin of 1e-2 (2e-2 for
    # "polar_express_safer") against rounding; the values pytorch_optimizer 4.1.0 tabulates.
    "polar_express": (
        (8.237312490495555, -23.157747414558198, 16.680568411445915),
        (4.082441999064835, -2.893047735332586, 0.5252849256975648),
        (3.9263479922546582, -2.8547468034765298, 0.5318022422894988),
        (3.2982187133085143, -2.424541981026706, 0.48632008358844075),
        (2.2970369434552573, -1.63662558125903, 0.4002628455953627),
        (1.8763805351440397, -1.2347896577722228, 0.35891887501668385),
        (1.8564423485617974, -1.2132449880935525, 0.3568003487825883),
        (1.8749994008682747, -1.2499988017229169, 0.3749994008546422),
    ),
    "polar_express_safer": (
        (8.156554524902461, -22.48329292557795, 15.878769915207462),
        (4.0429299351667245, -2.808917465908704, 0.5000178451051299),
        (3.8916678022926563, -2.7724841532176825, 0.5060648178503389),
        (3.285753657755658, -2.3681294933425394, 0.46449024233003117),
        (2.3005307116270983, -1.6111665557258408, 0.3833374427545273),
        (1.8631210546382593, -1.2042160621002727, 0.3421879560523383),
        (1.8382572152247512, -1.1779263289537742, 0.3396513038637379),
        (1.8749999923301852, -1.2499999836060613, 0.374999991275876),
    ),
}
PRECONDITIONINGS = ("frobenius", "spectral")


def _is_matrix(leaf) -> bool:
    """The leaves Muon orthogonalises: rank 2. Every other leaf gets AdamW."""
    return leaf.ndim == 2


def _only(tree, params, matrices: bool):
    """`tree` with the leaves of the other kind (matrix or not) replaced by None."""
    return jax.tree.map(lambda x, p: x if _is_matrix(p) == matrices else None, tree, params)


def _merge(matrix_part, other_part):
    """One tree from the two halves made by `_only`."""
    return jax.tree.map(
        lambda a, b: b if a is None else a, matrix_part, other_part, is_leaf=lambda x: x is None
    )


def orthogonalize_via_newton_schulz(
    x, ns_coeffs, ns_steps: int = 5, preconditioning: str = "frobenius", eps: float = 1e-8
):
    r"""The nearest semi-orthogonal matrix to x, approximately: U V^T for x = U S V^T.

    x is first scaled to norm at most 1 (Frobenius, or spectral), then each step maps
    x -> a x + (b A + c A^2) x with A = x x^T, which drives every singular value
    towards 1 (to about [0.7, 1.2] with the default coefficients, Jordan 2024). A tall
    x is transposed so that A is the smaller Gram matrix. ns_coeffs holds one (a, b, c)
    for every step, or one row per step (then ns_steps is the number of rows).
    """
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x, ord="fro") + eps)
    else:
        x = x / (jnp.linalg.norm(x, ord=2) + eps)

    def newton_schulz_step(x, abc):
        a, b, c = abc
        gram = x @ x.T.conj()
        return a * x + (b * gram + c * gram @ gram) @ x

    coeffs = jnp.asarray(ns_coeffs, x.dtype)
    if coeffs.ndim == 1:
        for _ in range(ns_steps):
            x = newton_schulz_step(x, coeffs)
    else:  # a loop over the rows, as optax runs it (an unrolled one rounds otherwise)
        x = jax.lax.scan(lambda x, abc: (newton_schulz_step(x, abc), None), x, coeffs)[0]
    return x.T if transposed else x


class MuonState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum of the matrix leaves (None at the others), in mu_dtype when given
    adam_state: Any  # AdamW's state over the other leaves (None at the matrices)


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: tuple | str = NS_COEFFS_PRESETS["standard"],
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any | Callable | None = None,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: float | None = None,
) -> Optimizer:
    r"""Muon (Jordan et al., 2024): SGD with Nesterov momentum whose step, for each matrix,
    is the momentum made (nearly) orthogonal by Newton-Schulz iterations.

    For step t = 1, 2, ... with gradient G_t of an m x n matrix leaf (fan-in m):

        M_t     = beta * M_{t-1} + (1 - beta) * G_t
        Mhat_t  = beta * M_t / (1 - beta^(t+1)) + (1 - beta) * G_t / (1 - beta^t)  (nesterov)
        Mhat_t  = M_t / (1 - beta^t)                                              (otherwise)
        O_t     = NewtonSchulz(Mhat_t)                      (about U V^T for Mhat = U S V^T)
        O_t     = <Mhat_t, O_t> * O_t                                             (adaptive)
        D_t     = sqrt(max(1, n / m)) * O_t,  or sqrt(max(m, n)) * consistent_rms * O_t
        W_t     = W_{t-1} - lr_t * (D_t + wd * W_{t-1})

    Every leaf of another rank (vectors, scalars, and tensors of rank 3 and more) is
    updated by `adamw(adam_learning_rate or learning_rate, adam_b1, adam_b2, eps,
    adam_eps_root, weight_decay=adam_weight_decay, nesterov=nesterov)`. ns_coeffs is
    an (a, b, c) triple, one triple per step, or a preset name ("standard", "dion",
    "polar_express", "polar_express_safer"; the last two have eight rows: ns_steps=8).
    `weight_decay_mask` selects the matrices that decay. Same arguments and defaults as
    `optax.contrib.muon`, except preconditioning "aol" and "schatten" and
    muon_weight_dimension_numbers (other axes or ranks for Muon), not supported.

    References: Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024 (kellerjordan.github.io/posts/muon); Bernstein & Newhouse, "Old
    Optimizer, New Norm: An Anthology", 2024 (arXiv:2409.20325); Liu et al., "Muon is
    Scalable for LLM Training", 2025 (arXiv:2502.16982).
    """
    not_supported("muon_weight_dimension_numbers", muon_weight_dimension_numbers, None)
    if preconditioning not in PRECONDITIONINGS:
        raise NotImplementedError(
            f"preconditioning={preconditioning!r} is not supported (only {PRECONDITIONINGS})"
        )
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS_PRESETS:
            raise ValueError(f"ns_coeffs must be one of {tuple(NS_COEFFS_PRESETS)} or numbers")
        ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
    coeffs = np.asarray(ns_coeffs, np.float64)
    if coeffs.ndim > 2 or coeffs.shape[-1] != 3:
        raise ValueError(f"ns_coeffs must have shape (3,) or (n, 3), got {coeffs.shape}")
    if coeffs.ndim == 2 and coeffs.shape[0] > ns_steps:
        raise ValueError(f"ns_coeffs has {coeffs.shape[0]} rows for ns_steps={ns_steps}")
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("beta", beta)
    check_nonnegative("weight_decay", weight_decay)
    check_adam(adam_learning_rate, adam_b1, adam_b2, eps, adam_eps_root)
    check_nonnegative("adam_weight_decay", adam_weight_decay)
    check_nonnegative("consistent_rms", consistent_rms)
    others = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        adam_b1,
        adam_b2,
        eps,
        adam_eps_root,
        mu_dtype,
        adam_weight_decay,
        nesterov=nesterov,
    )

    def shape_scale(update):
        fan_in, fan_out = update.shape
        if consistent_rms is None:
            return jnp.sqrt(jnp.maximum(1, fan_out / fan_in)) * update
        return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * update

    def init(params):
        return MuonState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(_only(params, params, True), mu_dtype),
            adam_state=others.init(_only(params, params, False)),
        )

    def update(grads, state, params=None, **extra):
        require_params("muon", params)
        check_same_tree(grads, params, "grads", "params")
        matrix_grads = _only(grads, params, True)
        t = increment(state.count)
        mu = update_moment(matrix_grads, state.mu, beta, 1)
        mhat = debiased_momentum(mu, matrix_grads, beta, t, 1 - beta**t, nesterov)
        # Each matrix is orthogonalised as a stack of one, as optax batches it: XLA's batched
        # matrix product rounds unlike the plain one, and near a minimum Muon's unit-norm
        # steps amplify any rounding difference.
        direction = jax.tree.map(
            lambda m: jax.vmap(
                lambda x: orthogonalize_via_newton_schulz(x, coeffs, ns_steps, preconditioning, eps)
            )(m[None])[0],
            mhat,
        )
        if adaptive:
            direction = jax.tree.map(lambda m, o: jnp.sum(m.conj() * o) * o, mhat, direction)
        direction = jax.tree.map(shape_scale, direction)
        direction = with_weight_decay(
            direction, _only(params, params, True), weight_decay, state.count, weight_decay_mask
        )
        other_updates, adam_state = others.update(
            _only(grads, params, False), state.adam_state, _only(params, params, False), **extra
        )
        updates = _merge(descend(learning_rate, state.count, direction), other_updates)
        return updates, MuonState(count=t, mu=cast_like(mu, state.mu), adam_state=adam_state)

    return Optimizer(init, update)


REGISTRY = {
    # Muon's step has unit spectral norm whatever the gradient's scale: 0.02 in
    # modded-nanogpt, 2e-2 to 1e-1 in the anthology; the other leaves take the same rate
    # in AdamW. Skipped on problems without a matrix (then it would be AdamW).
    "muon": OptimizerSpec(
        muon,
        LR_GRID,
        matrix_only=True,
        search_space={
            "beta": MOMENTUM,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
            "adam_b1": MOMENTUM,
            "adam_b2": SECOND_MOMENT,
        },
        default_learning_rate=0.02,  # Jordan et al. 2024
        reference="optax.contrib 0.2.8 muon",
    ),
}
__all__ = ["MuonState", "muon", "orthogonalize_via_newton_schulz"]
