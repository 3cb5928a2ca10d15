"""AggMo: aggregated momentum, the average of several heavy-ball velocities."""

from typing import NamedTuple

import jax

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_unit_interval,
    increment,
    zeros_like,
)
from optimizers.registry import WEIGHT_DECAY_OR_OFF, OptimizerSpec, log_grid
from optimizers.torch_style import (
    advanced,
    check_arguments,
    check_decay,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    learning_rate_at,
    map_leaves,
)


class AggmoState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    velocities: tuple  # v^(i), one tree per damping coefficient of betas


def aggmo(
    learning_rate: ScalarOrSchedule = 1e-3,
    betas: tuple[float, ...] = (0.0, 0.9, 0.99),
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""AggMo (Lucas et al., 2019): K heavy-ball velocities with different dampings,
    averaged.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay) and
    betas = (beta^(1), ..., beta^(K)):

        v^(i)_t = beta^(i) * v^(i)_{t-1} + g_t                      (v^(i)_0 = 0)
        theta_t = theta_{t-1} - (lr_t / K) * sum_i v^(i)_t

    Large betas accelerate along low-curvature directions, the small ones damp the
    oscillations the large ones cause. Decoupled decay (weight_decouple=True)
    multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with fixed_decay) before the step.
    Arguments and defaults as `pytorch_optimizer.AggMo` (lr named learning_rate); the
    number of velocities is structural, so betas is a tuple of numbers, not tuned.

    Reference: Lucas, Sun, Zemel & Grosse, "Aggregated Momentum: Stability Through
    Passive Damping", ICLR 2019.
    """
    check_nonnegative("learning_rate", learning_rate)
    if len(betas) == 0:
        raise ValueError("betas must hold at least one damping coefficient")
    for beta in betas:
        check_unit_interval("betas", beta)
    check_decay(weight_decay)

    def init(params):
        return initial_state(
            AggmoState, params, velocities=tuple(zeros_like(params) for _ in betas)
        )

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("aggmo", state, AggmoState, grads, params)

        def leaf(g, p, *velocities):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            step_size = -lr / len(betas)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            velocities = tuple(beta * v + g for beta, v in zip(betas, velocities, strict=True))
            step = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            for v in velocities:
                step = step + step_size * v
            return step, *velocities

        updates, *velocities = map_leaves(leaf, grads, params, *state.velocities)
        return updates, advanced(state, count=increment(state.count), velocities=tuple(velocities))

    return Optimizer(init, update)


REGISTRY = {
    # The average velocity is about mean_i 1 / (1 - beta^(i)) gradients long (37 with the
    # default betas): the grid sits a decade below SGD's.
    "aggmo": OptimizerSpec(
        aggmo,
        log_grid(1e-5, 1e-1),
        search_space={"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="pytorch-optimizer 4.1.0 AggMo",
    ),
}
__all__ = ["AggmoState", "aggmo"]
