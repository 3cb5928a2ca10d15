"""AdaMod: Adam whose per-coordinate step is capped by its own long-run average."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_unit_interval,
    increment,
)
from optimizers.registry import (
    EPS,
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
    learning_rate_at,
    lerp,
    map_leaves,
)


class AdamodState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v
    step_average: Any  # s: exponential moving average of the per-coordinate step sizes


def adamod(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.99,
    b3: float = 0.9999,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""AdaMod (Ding et al., 2019): Adam's per-coordinate step sizes, each capped by an
    exponential moving average of its past values.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay):

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        eta_t   = lr_t * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps)
        s_t     = b3 * s_{t-1} + (1 - b3) * eta_t                 (s_0 = 0)
        theta_t = theta_{t-1} - min(eta_t, s_t) * m_t

    b3 sets the memory of the cap, about 1 / (1 - b3) steps; s_0 = 0 makes the first
    steps small (a built-in warm-up). Decoupled decay (the default, weight_decouple=True)
    multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with fixed_decay) before the step.
    Arguments and defaults as `pytorch_optimizer.AdaMod` (its betas named b1, b2, b3,
    lr named learning_rate).

    Reference: Ding, Ren, Luo & Sun, "An Adaptive and Momental Bound Method for
    Stochastic Learning", arXiv:1910.12249, 2019.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_unit_interval("b3", b3)

    def init(params):
        return initial_state(AdamodState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adamod", state, AdamodState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        step_size = lr_t * jnp.sqrt(1 - b2**t) / (1 - b1**t)

        def leaf(g, m, v, s, p):
            lr = jnp.asarray(lr_t, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - b1)
            v = b2 * v + (1.0 - b2) * (g * g)
            eta = jnp.asarray(step_size, p.dtype) / (jnp.sqrt(v) + eps)
            s = lerp(s, eta, 1.0 - b3)
            step = -jnp.minimum(eta, s) * m
            return (
                decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay) + step,
                m,
                v,
                s,
            )

        updates, mu, nu, average = map_leaves(
            leaf, grads, state.mu, state.nu, state.step_average, params
        )
        return updates, advanced(state, count=t, mu=mu, nu=nu, step_average=average)

    return Optimizer(init, update)


REGISTRY = {
    "adamod": OptimizerSpec(
        adamod,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            # The cap's memory, 1 / (1 - b3): 100 to 100000 steps.
            "b3": Range(0.99, 0.99999, "one_minus_log"),
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdaMod",
    ),
}
__all__ = ["AdamodState", "adamod"]
