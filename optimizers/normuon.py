"""NorMuon: Muon's orthogonalised momentum normalised row by row by a second moment."""

import math
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
    update_moment,
    zeros_like,
)
from optimizers.muon_groups import (
    GROUPS_SPACE,
    adamw_group,
    as_matrix,
    coupled_decay,
    decoupled_decay,
    learning_rate_factor,
    merge,
    newton_schulz_schedule,
    only,
    orthogonalize,
    unzip,
)
from optimizers.registry import (
    MOMENTUM,
    SECOND_MOMENT,
    OptimizerSpec,
    log_grid,
)

UPDATE_SCALES = ("preserve_norm", "match_rms")


class NorMuonState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum of the matrix leaves (None at the others)
    nu: Any  # second moment of each row of the orthogonalised momentum, (rows, 1) per matrix
    adam_state: Any  # AdamW's state over the vectors and scalars (None at the matrices)


def normuon(
    learning_rate: ScalarOrSchedule = 2e-2,
    momentum: float = 0.95,
    beta2: float = 0.95,
    weight_decay: float = 0.0,
    ns_steps: int = 5,
    ns_coeffs: tuple | str = "original",
    adamw_learning_rate: ScalarOrSchedule = 3e-4,
    adamw_b1: float = 0.9,
    adamw_b2: float = 0.95,
    adamw_weight_decay: float = 0.0,
    adamw_eps: float = 1e-10,
    eps: float = 1e-10,
    *,
    nesterov: bool = True,
    update_scale: str = "preserve_norm",
    weight_decouple: bool = True,
    use_adjusted_lr: bool = False,
) -> Optimizer:
    r"""NorMuon (Li et al., 2025): Muon whose orthogonalised momentum is divided, row by
    row, by the root of a moving average of the row's mean square.

    For step t = 1, 2, ... and a leaf W of rank >= 2, seen as an r x c matrix (its first
    axis against the others), with gradient G_t:

        M_t = momentum * M_{t-1} + (1 - momentum) * G_t
        N_t = momentum * M_t + (1 - momentum) * G_t              (nesterov; else N_t = M_t)
        O_t = NewtonSchulz(N_t)                                  (about U V^T, N = U S V^T)
        v_t = beta2 * v_{t-1} + (1 - beta2) * mean_j(O_t[:, j]^2)          (one per row)
        D_t = O_t / (sqrt(v_t) + eps)                            (row i divided by v_t[i])
        D_t = ||O_t||_F * D_t / (||D_t||_F + eps)         (update_scale "preserve_norm")
        D_t = 0.2 sqrt(r c) * D_t / (||D_t||_F + eps)         (update_scale "match_rms")
        W_t = W_{t-1} - lr_t * (s * D_t + wd * W_{t-1})

    with s = 1 for "match_rms", else 0.2 * sqrt(max(r, c)) (use_adjusted_lr) or
    sqrt(max(1, r / c)). v_0 = 0 and v is not bias-corrected. Vectors and scalars take
    AdamW (adamw_learning_rate, adamw_b1, adamw_b2, adamw_eps, adamw_weight_decay).
    weight_decouple=False adds wd * W (adamw_weight_decay * W for the others) to the
    gradient instead. The Newton-Schulz step divides N by max(||N||_F, 1e-7) and runs
    ns_steps iterations of ns_coeffs (a preset of `optimizers.muon.NS_COEFFS_PRESETS`,
    "original" or "quintic", a triple, or rows of triples, the last row repeated).

    Follows pytorch_optimizer 4.1.0's NorMuon: "preserve_norm" (its default, as the
    authors' code) keeps the norm of O_t where the paper's Algorithm 1 sets the RMS to
    0.2 ("match_rms"); the iterations run in the parameters' dtype (the reference's in
    bfloat16).

    Reference: Li, Liu, Liang, Chen and Zhao, "NorMuon: Making Muon more efficient and
    scalable", 2025 (arXiv:2510.05491).
    """
    schedule = newton_schulz_schedule(ns_coeffs, ns_steps)
    if update_scale not in UPDATE_SCALES:
        raise ValueError(f"update_scale must be one of {UPDATE_SCALES}, got {update_scale!r}")
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("momentum", momentum)
    check_unit_interval("beta2", beta2)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("eps", eps)
    others = adamw_group(
        adamw_learning_rate, adamw_b1, adamw_b2, adamw_eps, adamw_weight_decay, weight_decouple
    )

    def direction(mu, g, nu):
        n = momentum * mu + (1 - momentum) * g if nesterov else mu
        o = orthogonalize(n, schedule)
        nu = update_moment(jnp.mean(jnp.square(o), axis=-1, keepdims=True), nu, beta2, 1)
        d = o / (jnp.sqrt(nu) + eps)
        if update_scale == "preserve_norm":
            d = jnp.linalg.norm(o) * d / (jnp.linalg.norm(d) + eps)
            factor = learning_rate_factor(mu.shape, use_adjusted_lr)
        else:
            d = 0.2 * math.sqrt(d.size) * d / (jnp.linalg.norm(d) + eps)
            factor = 1.0
        return factor * d.reshape(mu.shape), nu

    def init(params):
        matrices = only(params, params, True)
        return NorMuonState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(matrices),
            nu=zeros_like(jax.tree.map(lambda p: as_matrix(p)[:, :1], matrices)),
            adam_state=others.init(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("normuon", params)
        check_state(state, NorMuonState)
        check_same_tree(grads, params, "grads", "params")
        grads = coupled_decay(grads, params, weight_decay, adamw_weight_decay, weight_decouple)
        matrix_grads = only(grads, params, True)
        mu = update_moment(matrix_grads, state.mu, momentum, 1)
        steps, nu = unzip(jax.tree.map(direction, mu, matrix_grads, state.nu))
        steps = decoupled_decay(steps, params, weight_decay, weight_decouple)
        other_updates, adam_state = others.update(grads, state.adam_state, params)
        updates = merge(descend(learning_rate, state.count, steps), other_updates)
        return updates, NorMuonState(
            count=increment(state.count),
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            adam_state=adam_state,
        )

    return Optimizer(init, update)


REGISTRY = {
    # Muon's step size (unit spectral norm): the reference's default 2e-2, a grid around
    # it. Skipped on problems without a matrix (then it would be AdamW).
    "normuon": OptimizerSpec(
        normuon,
        log_grid(1e-4, 1.0),
        matrix_only=True,
        search_space={"momentum": MOMENTUM, "beta2": SECOND_MOMENT} | GROUPS_SPACE,
        reference="pytorch-optimizer 4.1.0 NorMuon",
    ),
}
__all__ = ["NorMuonState", "normuon"]
