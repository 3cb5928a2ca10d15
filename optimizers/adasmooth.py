"""AdaSmooth: RMSProp whose averaging speed follows how straight the iterates have moved."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    increment,
)
from optimizers.registry import EPS, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    float_copy,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
)


class AdasmoothState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    previous: Any  # theta_{t-1} after its decay (theta_0 at first)
    displacement: Any  # s: the sum of the parameter changes so far
    path: Any  # n: the sum of their absolute values
    nu: Any  # v: the moving average of g^2


def adasmooth(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.5,
    b2: float = 0.99,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    eps: float = 1e-6,
) -> Optimizer:
    r"""AdaSmooth (Lu, 2022): RMSProp with a per-coordinate averaging rate set by the
    effective ratio of the iterates' path, fast where they move straight, slow where
    they oscillate.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay), theta
    after its decoupled decay (below), and d_t = theta_{t-1} - theta_{t-2} (0 at t = 1):

        s_t     = s_{t-1} + d_t,    n_t = n_{t-1} + |d_t|                (s_0 = n_0 = 0)
        e_t     = |s_t| / (n_t + eps)                     (the effective ratio, in [0, 1])
        c_t     = (b2 - b1) * e_t + 1 - b2
        v_t     = v_{t-1} + c_t^2 * (g_t^2 - v_{t-1})                    (v_0 = 0)
        theta_t = theta_{t-1} - lr_t * g_t / sqrt(v_t + eps)

    Decoupled decay (weight_decouple=True) multiplies theta_{t-1} by 1 - lr_t * wd
    (1 - wd with fixed_decay) first, and d_t is measured from the decayed parameters.

    Follows `pytorch_optimizer.AdaSmooth` (betas named b1, b2, lr named learning_rate),
    where the paper differs: the effective ratio is taken over the whole path since the
    first step, not over a window of M steps, and eps is inside the square root.

    Reference: Lu, "AdaSmooth: An Adaptive Learning Rate Method based on Effective
    Ratio", arXiv:2204.00825, 2022.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)

    def init(params):
        return initial_state(AdasmoothState, params, previous=float_copy(params))

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("adasmooth", state, AdasmoothState, grads, params)

        def leaf(g, previous, s, n, v, p):
            lr = learning_rate_at(learning_rate, state.count, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            decayed = p + decay
            change = decayed - previous
            s = s + change
            n = n + jnp.abs(change)
            c = jnp.abs(s) / (n + eps)
            c = c * (b2 - b1) + (1.0 - b2)
            v = lerp(v, g * g, c * c)
            step = lr / jnp.sqrt(v + eps) * g
            return decay - step, decayed, s, n, v

        updates, previous, s, n, v = map_leaves(
            leaf, grads, state.previous, state.displacement, state.path, state.nu, params
        )
        return updates, advanced(
            state,
            count=increment(state.count),
            previous=previous,
            displacement=s,
            path=n,
            nu=v,
        )

    return Optimizer(init, update)


REGISTRY = {
    "adasmooth": OptimizerSpec(
        adasmooth,
        LR_GRID,
        search_space={
            # The averaging rates for an oscillating path (1 - b2) and a straight one (1 - b1).
            "b1": Range(0.1, 0.9, "linear"),
            "b2": Range(0.9, 0.999, "one_minus_log"),
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdaSmooth",
    ),
}
__all__ = ["AdasmoothState", "adasmooth"]
