"""AvaGrad: Adam with a delayed second moment and a global step normalised by the
parameter-wise step sizes' harmonic mean."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    increment,
    lowest_dtype,
    state_dtype,
)
from optimizers.registry import (
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
    log_grid,
)
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
)


class AvagradState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    gamma: jax.Array  # the normalisation of the next step, from this step's step sizes
    mu: Any  # first moment m
    nu: Any  # second moment v


def avagrad(
    learning_rate: ScalarOrSchedule = 1e-1,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    eps: float = 1e-1,
) -> Optimizer:
    r"""AvaGrad (Savarese et al., 2021): Adam whose denominator is the second moment of
    the previous step (independent of the current gradient), and whose step is
    normalised by the root mean square of the inverse parameter-wise step sizes, which
    decouples the learning rate from eps.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay):

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        theta_t = theta_{t-1} - gamma_{t-1} * lr_t / (1 - b1^t)
                                * m_t / (sqrt(v_{t-1}) / sqrt(1 - b2^(t-1)) + eps)   (t > 1)
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        eta_t   = sqrt(v_{t-1}) / sqrt(1 - b2^t) + eps
        gamma_t = 1 / sqrt(mean over every entry of every leaf of eta_t^-2)

    The first step moves nothing (it only fills the moments). Decoupled decay (the
    default, weight_decouple=True) multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with
    fixed_decay), at every step.

    Follows `pytorch_optimizer.AvaGrad` (betas named b1, b2, lr named learning_rate),
    whose eta_t is computed from v_{t-1} (before this step's update of v) with this
    step's correction sqrt(1 - b2^t), and whose gamma_t applies from the next step.

    Reference: Savarese, McAllester, Babu & Maire, "Domain-independent Dominance of
    Adaptive Methods", CVPR 2021.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)

    def init(params):
        return initial_state(
            AvagradState, params, gamma=jnp.zeros([], state_dtype(lowest_dtype(params)))
        )

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("avagrad", state, AvagradState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        first = t == 1
        correction2 = jnp.sqrt(1.0 - b2**t)
        previous_correction2 = jnp.sqrt(1.0 - b2 ** jnp.maximum(t - 1, 1))
        step_size = state.gamma * lr_t / (1.0 - b1**t)

        def leaf(g, m, v, p):
            dtype = p.dtype
            lr = jnp.asarray(lr_t, dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - b1)
            root = jnp.sqrt(v)
            denominator = root / previous_correction2.astype(dtype) + eps
            step = jnp.where(first, 0.0, -jnp.asarray(step_size, dtype) * (m / denominator))
            v = b2 * v + (1.0 - b2) * (g * g)
            rates = root / correction2.astype(dtype) + eps
            inverse_squares = jnp.sum(rates**-2)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            return decay + step, m, v, inverse_squares

        updates, mu, nu, inverse_squares = map_leaves(leaf, grads, state.mu, state.nu, params)
        size = sum(leaf.size for leaf in jax.tree.leaves(params))
        gamma = 1.0 / jnp.sqrt(sum(jax.tree.leaves(inverse_squares)) / size)
        return updates, advanced(state, count=t, gamma=gamma, mu=mu, nu=nu)

    return Optimizer(init, update)


REGISTRY = {
    # gamma makes the step lr long whatever eps (the paper's point): lr and eps are
    # tuned apart, lr around 0.1 (the reference's default).
    "avagrad": OptimizerSpec(
        avagrad,
        log_grid(1e-3, 10.0),
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "eps": Range(1e-8, 10.0),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AvaGrad",
    ),
}
__all__ = ["AvagradState", "avagrad"]
