"""SCION and SCIONLight: steps along the linear minimization oracle of a norm chosen per
leaf (spectral for matrices and convolutions, RMS for vectors and scalars)."""

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
    with_weight_decay,
    zeros_like,
)
from optimizers.muon_groups import newton_schulz_schedule, orthogonalize
from optimizers.registry import LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range

# The oracles' Newton-Schulz iterations: Jordan's triple, five times.
SCHEDULE = newton_schulz_schedule("standard", 5)
# Added to the RMS a vector's or scalar's direction is divided by.
RMS_EPS = 1e-8


def lmo(d):
    """The direction of the linear minimization oracle of the norm of d's rank (its
    "auto" norm): for a vector or a scalar, d / (RMS(d) + 1e-8); for a matrix of d_out x
    d_in, sqrt(d_out / d_in) NewtonSchulz(d); for a convolution of d_out x d_in x k..., the
    same of its d_out x (d_in k...) view divided by the kernel's size k... ."""
    if d.ndim <= 1:
        rms = jnp.sqrt(jnp.mean(jnp.square(d)) if d.ndim else jnp.square(d))
        return d / (rms + RMS_EPS)
    if d.ndim > 4:
        raise NotImplementedError(f"scion has no norm for leaves of rank {d.ndim} (at most 4)")
    d_out, d_in, *kernel = d.shape
    scale = math.sqrt(d_out / d_in) / math.prod(kernel)
    return scale * orthogonalize(d, SCHEDULE).reshape(d.shape)


def _check(learning_rate, alpha, scale, weight_decay):
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("alpha", alpha)
    check_unit_interval("1 - alpha", 1 - alpha)
    check_nonnegative("scale", scale)
    check_nonnegative("weight_decay", weight_decay)


def _direction(lmos, params, weight_decay, constraint: bool, weight_decouple: bool):
    """scale * lmo(d), plus W (constraint: W_t = (1 - lr) W + ...) or the decoupled wd * W."""
    if constraint:
        return jax.tree.map(lambda u, p: u + p, lmos, params)
    if weight_decouple:
        return with_weight_decay(lmos, params, weight_decay, 0)
    return lmos


def _coupled(grads, params, weight_decay, constraint: bool, weight_decouple: bool):
    if constraint or weight_decouple:
        return grads
    return with_weight_decay(grads, params, weight_decay, 0)


class ScionState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    d: Any  # the averaged gradient each oracle is taken of


def scion(
    learning_rate: ScalarOrSchedule = 1e-3,
    alpha: float = 0.1,
    scale: float = 1.0,
    weight_decay: float = 0.0,
    *,
    constraint: bool = False,
    weight_decouple: bool = True,
) -> Optimizer:
    r"""SCION (Pethick et al., 2025): a step along the linear minimization oracle (LMO) of
    an averaged gradient, for a norm that fits each leaf's role.

    For step t = 1, 2, ... with gradient G_t (alpha is the weight of the new gradient,
    1 minus the usual momentum: pytorch_optimizer's and the authors' `momentum`):

        D_t = (1 - alpha) * D_{t-1} + alpha * G_t                     (D_0 = 0)
        U_t = scale * lmo(D_t)
        W_t = W_{t-1} - lr_t * (U_t + wd * W_{t-1})                   (unconstrained)
        W_t = (1 - lr_t) * W_{t-1} - lr_t * U_t                        (constraint)

    lmo is `optimizers.scion.lmo`: for a matrix, sqrt(d_out / d_in) times its nearest
    semi-orthogonal matrix (five Newton-Schulz iterations of Jordan's triple after division
    by max(||D||_F, 1e-7)); for a rank-3 or rank-4 leaf, the same of its d_out x rest view
    divided by the kernel's size; for a vector or a scalar, D / (RMS(D) + 1e-8). With
    constraint=True the iterate stays in the ball of radius `scale` (a conditional-gradient
    step) and weight_decay is not used; weight_decouple=False adds wd * W to the gradient
    instead of decaying W.

    Follows pytorch_optimizer 4.1.0's SCION with its default norm ("auto": Spectral,
    SpectralConv, BiasRMS by rank); its iterations run in bfloat16, these in the
    parameters' dtype. Leaves of rank 5 or more raise NotImplementedError, as there.

    Reference: Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls and Cevher, "Training
    Deep Learning Models with Norm-Constrained LMOs", ICML 2025 (arXiv:2502.07529).
    """
    _check(learning_rate, alpha, scale, weight_decay)

    def init(params):
        return ScionState(count=jnp.zeros([], jnp.int32), d=zeros_like(params))

    def update(grads, state, params=None, **extra):
        del extra
        require_params("scion", params)
        check_state(state, ScionState)
        check_same_tree(grads, params, "grads", "params")
        grads = _coupled(grads, params, weight_decay, constraint, weight_decouple)
        d = update_moment(grads, state.d, 1 - alpha, 1)
        lmos = jax.tree.map(lambda x: scale * lmo(x), d)
        direction = _direction(lmos, params, weight_decay, constraint, weight_decouple)
        updates = descend(learning_rate, state.count, direction)
        return updates, ScionState(count=increment(state.count), d=cast_like(d, state.d))

    return Optimizer(init, update)


class ScionLightState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    buffer: Any  # (1 - alpha) times the last gradient sum, to which the next is added


def scion_light(
    learning_rate: ScalarOrSchedule = 1e-3,
    alpha: float = 0.1,
    scale: float = 1.0,
    weight_decay: float = 0.0,
    *,
    constraint: bool = False,
    weight_decouple: bool = True,
) -> Optimizer:
    r"""SCIONLight (Pethick et al., 2025): SCION whose average is the gradient buffer
    itself, scaled after each step and added to by the next gradient.

    For step t = 1, 2, ... with gradient G_t:

        B_t = (1 - alpha) * B_{t-1} + G_t                             (B_0 = 0)
        U_t = scale * lmo(B_t)
        W_t = W_{t-1} - lr_t * (U_t + wd * W_{t-1})                   (unconstrained)
        W_t = (1 - lr_t) * W_{t-1} - lr_t * U_t                        (constraint)

    B_t is SCION's D_t / alpha, and the oracles do not see the scale (but for their
    eps): without weight decay the two take the same steps up to rounding.
    weight_decouple=False adds wd * W_{t-1} to B_t, where it stays and decays with it.
    lmo, constraint and the leaves are as `scion`'s.

    Follows pytorch_optimizer 4.1.0's SCIONLight, whose buffer is the parameters'
    `.grad`, accumulated by the next backward pass (here B_t is state).

    Reference: Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls and Cevher, "Training
    Deep Learning Models with Norm-Constrained LMOs", ICML 2025 (arXiv:2502.07529).
    """
    _check(learning_rate, alpha, scale, weight_decay)

    def init(params):
        return ScionLightState(count=jnp.zeros([], jnp.int32), buffer=zeros_like(params))

    def update(grads, state, params=None, **extra):
        del extra
        require_params("scion_light", params)
        check_state(state, ScionLightState)
        check_same_tree(grads, params, "grads", "params")
        total = jax.tree.map(lambda g, b: g + b, grads, state.buffer)
        total = _coupled(total, params, weight_decay, constraint, weight_decouple)
        lmos = jax.tree.map(lambda x: scale * lmo(x), total)
        direction = _direction(lmos, params, weight_decay, constraint, weight_decouple)
        updates = descend(learning_rate, state.count, direction)
        buffer = jax.tree.map(lambda b: (1 - alpha) * b, total)
        return updates, ScionLightState(
            count=increment(state.count), buffer=cast_like(buffer, state.buffer)
        )

    return Optimizer(init, update)


# The oracle's step has a fixed size (spectral norm sqrt(d_out / d_in), RMS 1), so the
# learning rate is a step length: the reference's default 1e-3 inside Muon's grid.
# `scale` multiplies the step as the learning rate does and is left at 1.
_SPACE = {"alpha": Range(1e-2, 1.0, "log"), "weight_decay": WEIGHT_DECAY_OR_OFF}
REGISTRY = {
    "scion": OptimizerSpec(
        scion, LR_GRID, search_space=_SPACE, reference="pytorch-optimizer 4.1.0 SCION"
    ),
    "scion_light": OptimizerSpec(
        scion_light, LR_GRID, search_space=_SPACE, reference="pytorch-optimizer 4.1.0 SCIONLight"
    ),
}
__all__ = ["ScionLightState", "ScionState", "lmo", "scion", "scion_light"]
