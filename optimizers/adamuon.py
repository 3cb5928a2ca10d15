"""AdaMuon: Muon's orthogonalised momentum with an element-wise second moment of it."""

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


class AdaMuonState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    m: Any  # momentum of the matrix leaves (None at the others)
    v: Any  # second moment of the orthogonalised momentum, element-wise (None at the others)
    adam_state: Any  # AdamW's state over the vectors and scalars (None at the matrices)


def adamuon(
    learning_rate: ScalarOrSchedule = 2e-2,
    b1: float = 0.9,
    b2: float = 0.95,
    weight_decay: float = 0.0,
    ns_steps: int = 5,
    ns_coeffs: tuple | str = "original",
    adamw_learning_rate: ScalarOrSchedule = 3e-4,
    adamw_b1: float = 0.9,
    adamw_b2: float = 0.999,
    adamw_weight_decay: float = 0.0,
    eps: float = 1e-10,
    *,
    weight_decouple: bool = True,
    use_adjusted_lr: bool = True,
) -> Optimizer:
    r"""AdaMuon (Si et al., 2025): Muon whose orthogonalised momentum is divided by the
    root of its own element-wise second moment, then rescaled to a fixed norm.

    For step t = 1, 2, ... and a leaf W of rank >= 2, seen as an r x c matrix (its first
    axis against the others), with gradient G_t:

        M_t = b1 * M_{t-1} + (1 - b1) * G_t
        O_t = NewtonSchulz(M_t)                                  (about U V^T, M = U S V^T)
        V_t = b2 * V_{t-1} + (1 - b2) * O_t^2                    (element-wise)
        D_t = O_t / (sqrt(V_t / (1 - b2^t)) + eps)
        D_t = sqrt(min(r, c)) * D_t / (||D_t||_F + eps)
        W_t = W_{t-1} - lr_t * (s * D_t + wd * W_{t-1})

    with s = 0.2 * sqrt(max(r, c)) (use_adjusted_lr, Moonlight's match of AdamW's RMS)
    or sqrt(max(1, r / c)). Vectors and scalars take AdamW (adamw_learning_rate,
    adamw_b1, adamw_b2, eps, adamw_weight_decay). weight_decouple=False adds wd * W
    (adamw_weight_decay * W for the others) to the gradient instead. The Newton-Schulz
    step divides M by max(||M||_F, 1e-7) and runs ns_steps iterations of the
    coefficients ns_coeffs (a preset of `optimizers.muon.NS_COEFFS_PRESETS`, "original"
    or "quintic", a triple, or rows of triples, the last row repeated).

    Follows pytorch_optimizer 4.1.0's AdaMuon where it departs from the paper (v2): the
    paper orthogonalises Sign(M_t), the reference (and this rule) M_t itself; the
    reference divides V_t by 1 - b2^t, which the rescaling cancels but for eps. The
    iterations run in the parameters' dtype (the reference's in bfloat16).

    Reference: Si, Zhang and Shen, "AdaMuon: Adaptive Muon Optimizer", 2025
    (arXiv:2507.11005).
    """
    schedule = newton_schulz_schedule(ns_coeffs, ns_steps)
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("weight_decay", weight_decay)
    others = adamw_group(
        adamw_learning_rate,
        adamw_b1,
        adamw_b2,
        eps,
        adamw_weight_decay,
        weight_decouple,
        eps_name="eps",
    )

    def direction(m, v, t):
        o = orthogonalize(m, schedule)
        v = update_moment(o.reshape(v.shape), v, b2, 2)
        correction = (1 - b2**t).astype(v.dtype)
        d = o / (jnp.sqrt(v / correction).reshape(o.shape) + eps)
        rows, cols = d.shape
        d = math.sqrt(min(rows, cols)) * d / (jnp.linalg.norm(d) + eps)
        return learning_rate_factor(m.shape, use_adjusted_lr) * d.reshape(m.shape), v

    def init(params):
        matrices = only(params, params, True)
        return AdaMuonState(
            count=jnp.zeros([], jnp.int32),
            m=zeros_like(matrices),
            v=zeros_like(matrices),
            adam_state=others.init(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("adamuon", params)
        check_state(state, AdaMuonState)
        check_same_tree(grads, params, "grads", "params")
        grads = coupled_decay(grads, params, weight_decay, adamw_weight_decay, weight_decouple)
        t = increment(state.count)
        m = update_moment(only(grads, params, True), state.m, b1, 1)
        steps, v = unzip(jax.tree.map(lambda m, v: direction(m, v, t), m, state.v))
        steps = decoupled_decay(steps, params, weight_decay, weight_decouple)
        other_updates, adam_state = others.update(grads, state.adam_state, params)
        updates = merge(descend(learning_rate, state.count, steps), other_updates)
        return updates, AdaMuonState(
            count=t, m=cast_like(m, state.m), v=cast_like(v, state.v), adam_state=adam_state
        )

    return Optimizer(init, update)


REGISTRY = {
    # The step has RMS 0.2 (use_adjusted_lr) whatever the gradient's scale, as AdamW's
    # typically has: the reference's default 2e-2, a grid around it. Skipped on problems
    # without a matrix (then it would be AdamW).
    "adamuon": OptimizerSpec(
        adamuon,
        log_grid(1e-4, 1.0),
        matrix_only=True,
        search_space={"b1": MOMENTUM, "b2": SECOND_MOMENT} | GROUPS_SPACE,
        reference="pytorch-optimizer 4.1.0 AdaMuon",
    ),
}
__all__ = ["AdaMuonState", "adamuon"]
