"""SWATS: Adam that switches to SGD with momentum once its projected step size settles."""

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
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    leaf_zeros,
    learning_rate_at,
    lerp,
    map_leaves,
    second_moment,
)

# The absolute tolerance of the switching test (torch.allclose's default atol).
SWITCH_ATOL = 1e-8


class SwatsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    sgd: jax.Array  # bool: whether the rule has switched to SGD
    sgd_learning_rate: jax.Array  # the SGD phase's learning rate, set at the switch
    mu: Any  # Adam's first moment m
    nu: Any  # Adam's second moment v
    nu_max: Any  # running maximum of v (ams_bound; zeros and unused otherwise)
    scale: Any  # lambda: per leaf, the moving average of the projected SGD step size
    momentum: Any  # the SGD phase's momentum buffer


def swats(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    ams_bound: bool = False,
    nesterov: bool = False,
    eps: float = 1e-6,
) -> Optimizer:
    r"""SWATS (Keskar & Socher, 2017): Adam until the SGD learning rate that would take
    Adam's step, projected on the gradient, has settled; SGD with momentum from then on.

    Adam phase, for step t with gradient g_t of a leaf (plus wd * theta_{t-1} under
    coupled decay):

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        p_t     = -lr_t * sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(u_t + 1e-15) + eps)
                  (u_t = max(u_{t-1}, v_t) with ams_bound=True, v_t otherwise)
        theta_t = theta_{t-1} + p_t
        gamma_t = -<p_t, p_t> / <p_t, g_t>        (where <p_t, g_t> != 0)
        lambda_t = b2 * lambda_{t-1} + (1 - b2) * gamma_t          (lambda_0 = 0)

    After a step t > 1 at which some leaf has lambda_t / (1 - b2^t) > 0 and
    |lambda_t / (1 - b2^t) - gamma_t| <= 1e-8 + eps * |gamma_t|, the rule switches,
    for all leaves, to SGD at the learning rate lr_sgd = lambda_t / (1 - b2^t) of the
    last such leaf (in tree order). SGD phase:

        b_t     = b1 * b_{t-1} + g_t                               (b = 0 at the switch)
        theta_t = theta_{t-1} - lr_sgd * (1 - b1) * b_t

    Decoupled decay (weight_decouple=True) multiplies theta_{t-1} by 1 - lr * wd
    (1 - wd with fixed_decay) before the step, lr being lr_t, then lr_sgd.

    Follows `pytorch_optimizer.SWATS` (betas named b1, b2, lr named learning_rate), where
    the paper differs: the switch is tested per leaf with eps as the relative tolerance
    and switches every leaf at once; the SGD step is (1 - b1) * b_t; and nesterov=True
    adds b1 * b_t to it, a step of b_t, not Nesterov's look-ahead (the reference's rule).

    Reference: Keskar & Socher, "Improving Generalization Performance by Switching from
    Adam to SGD", arXiv:1712.07628, 2017.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)

    def init(params):
        return initial_state(
            SwatsState,
            params,
            sgd=jnp.zeros([], bool),
            sgd_learning_rate=jnp.zeros([], state_dtype(lowest_dtype(params))),
            scale=leaf_zeros(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("swats", state, SwatsState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        correction2 = 1.0 - b2**t
        step_size = lr_t * jnp.sqrt(correction2) / (1.0 - b1**t)

        def leaf(g, m, v, v_max, scale, buffer, p):
            lr_adam = jnp.asarray(lr_t, p.dtype)
            lr_sgd = state.sgd_learning_rate.astype(p.dtype)
            lr = jnp.where(state.sgd, lr_sgd, lr_adam)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            # SGD phase.
            sgd_buffer = b1 * buffer + g
            sgd_direction = sgd_buffer * (1.0 - b1)
            if nesterov:
                sgd_direction = sgd_direction + b1 * sgd_buffer
            # Adam phase.
            m_new = lerp(m, g, 1.0 - b1)
            v_new, v_max_new, denominator = second_moment(g, v, v_max, b2, ams_bound, eps)
            perturb = (m_new / denominator) * -jnp.asarray(step_size, p.dtype)
            projected = jnp.vdot(perturb.reshape(-1), g.reshape(-1))
            moved = projected != 0
            gamma = jnp.vdot(perturb.reshape(-1), perturb.reshape(-1)) / -jnp.where(
                moved, projected, 1.0
            )
            scale_new = jnp.where(moved, lerp(scale, gamma, 1.0 - b2), scale)
            corrected = scale_new / correction2.astype(p.dtype)
            settled = (
                moved
                & (t > 1)
                & (corrected > 0)
                & (jnp.abs(corrected - gamma) <= SWITCH_ATOL + eps * jnp.abs(gamma))
            )

            def pick(sgd_value, adam_value):
                return jnp.where(state.sgd, sgd_value, adam_value)

            return (
                pick(decay - lr_sgd * sgd_direction, decay + perturb),
                pick(m, m_new),
                pick(v, v_new),
                pick(v_max, v_max_new),
                pick(scale, scale_new),
                pick(sgd_buffer, buffer),
                settled & ~state.sgd,
                corrected,
            )

        updates, mu, nu, nu_max, scale, momentum, settled, corrected = map_leaves(
            leaf, grads, state.mu, state.nu, state.nu_max, state.scale, state.momentum, params
        )
        # The switch takes the corrected average of the last leaf that settled.
        switch, sgd_learning_rate = jnp.zeros([], bool), state.sgd_learning_rate
        for leaf_settled, leaf_rate in zip(
            jax.tree.leaves(settled), jax.tree.leaves(corrected), strict=True
        ):
            switch = switch | leaf_settled
            sgd_learning_rate = jnp.where(
                leaf_settled, leaf_rate.astype(sgd_learning_rate.dtype), sgd_learning_rate
            )
        return updates, advanced(
            state,
            count=t,
            sgd=state.sgd | switch,
            sgd_learning_rate=sgd_learning_rate,
            mu=mu,
            nu=nu,
            nu_max=nu_max,
            scale=scale,
            momentum=momentum,
        )

    return Optimizer(init, update)


REGISTRY = {
    "swats": OptimizerSpec(
        swats,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            # Also the relative tolerance of the switching test.
            "eps": Range(1e-9, 1e-3),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 SWATS",
    ),
}
__all__ = ["SwatsState", "swats"]
