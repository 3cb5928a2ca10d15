"""AdamC: AdamW whose weight decay on normalized layers follows the learning rate's schedule."""

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
    descend,
    increment,
    state_dtype,
    update_moment,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec

# Added to v_t under the square root, as the reference implementation adds it.
EPS_ROOT = 1e-15


class AdamCState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v
    max_nu: Any  # running maximum of v (ams_bound); (0,) per leaf without


def _selected(selection, params):
    """A tree of bools shaped like the params from a tree (or a prefix of one) or a
    function of the params; None selects no leaf."""
    if selection is None:
        return jax.tree.map(lambda _: False, params)
    chosen = selection(params) if callable(selection) else selection
    return jax.tree.map(lambda m, p: jax.tree.map(lambda _: m, p), chosen, params)


def adamc(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    normalized: Any = None,
    max_learning_rate: float | None = None,
    *,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = False,
) -> Optimizer:
    r"""AdamC (Defazio, 2025): AdamW with the decay of normalized layers scaled by
    lr_t / lr_max, which keeps their steady-state gradient norm from growing as the
    learning rate is annealed.

    For step t = 1, 2, ... with gradient g_t:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        d_t     = (sqrt(v_t + 1e-15) + eps) / sqrt(1 - b2^t)
        c_t     = lr_t / lr_max  on the `normalized` leaves, 1 on the others
        theta_t = theta_{t-1} - lr_t * (m_t / (1 - b1^t) / d_t + c_t * wd_t * theta_{t-1})

    `normalized` (a tree of bools, a prefix of one, or a function of the params; None:
    no leaf) marks the leaves whose scale a normalization layer after them removes (the
    weights of layers followed by a LayerNorm or BatchNorm); `mask` selects the leaves
    that decay at all. lr_max is `max_learning_rate`, by default the learning rate itself
    (then c_t = 1 and AdamC is AdamW); a schedule with `normalized` leaves needs it.

    eps is added to sqrt(v_t) before the bias correction divides it, and 1e-15 is added
    to v_t under the root, as in the reference implementation (pytorch-optimizer's
    `AdamC`), whose options these are:

    - ams_bound=True: v_t in d_t is replaced by max(v_1, ..., v_t);
    - weight_decouple=False: the decay is coupled, added to the gradient first
      (g_t <- g_t + wd_t * theta_{t-1}), and c_t plays no part;
    - fixed_decay=True (decoupled only): the decay is wd_t * theta_{t-1} on every
      leaf, multiplied by neither lr_t nor c_t.

    Reference: Defazio, "Why Gradients Rapidly Increase Near the End of Training",
    arXiv:2506.02285.
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("max_learning_rate", max_learning_rate)
    if max_learning_rate is None:
        if callable(learning_rate) and normalized is not None:
            raise ValueError("max_learning_rate must be given with a learning-rate schedule")
        max_learning_rate = learning_rate

    def init(params):
        max_nu = (
            zeros_like(params)
            if ams_bound
            else jax.tree.map(lambda p: jnp.zeros((0,), state_dtype(p.dtype)), params)
        )
        return AdamCState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params),
            nu=zeros_like(params),
            max_nu=max_nu,
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AdamCState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        if not weight_decouple:
            grads = with_weight_decay(grads, params, weight_decay, state.count, mask)
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        max_nu = jax.tree.map(jnp.maximum, state.max_nu, nu) if ams_bound else state.max_nu
        correction1, root_correction2 = 1 - b1**t, jnp.sqrt(1 - b2**t)
        direction = jax.tree.map(
            lambda m, v: (
                (m / correction1.astype(m.dtype))
                / ((jnp.sqrt(v + EPS_ROOT) + eps) / root_correction2.astype(v.dtype))
            ),
            mu,
            max_nu if ams_bound else nu,
        )
        updates = descend(learning_rate, state.count, direction)
        if weight_decouple:
            zeros = jax.tree.map(jnp.zeros_like, direction)
            decay = with_weight_decay(zeros, params, weight_decay, state.count, mask)
            lr_t = value_at(learning_rate, state.count)
            lr = 1.0 if fixed_decay else lr_t
            corrected = None if fixed_decay else normalized
            if corrected is not None:
                # lr_t / lr_max, with 0 / 0 taken as 0 (no step at lr = 0).
                positive = jnp.asarray(max_learning_rate) > 0
                ratio = jnp.where(positive, lr_t, 0.0) / jnp.where(positive, max_learning_rate, 1.0)
            factors = jax.tree.map(lambda n: lr * ratio if n else lr, _selected(corrected, params))
            updates = jax.tree.map(
                lambda u, d, f: (u - f * d).astype(u.dtype), updates, decay, factors
            )
        new_state = AdamCState(
            count=t,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            max_nu=cast_like(max_nu, state.max_nu),
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    "adamc": OptimizerSpec(
        adamc,
        LR_GRID,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # pytorch-optimizer's AdamC (Adam's)
        reference="pytorch-optimizer 4.1.0 AdamC",
    ),
}
__all__ = ["AdamCState", "adamc"]
