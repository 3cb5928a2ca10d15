"""LaProp: Adam with the momentum taken after the adaptive scaling, not before."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    increment,
    lowest_dtype,
    require_params,
    state_dtype,
    update_moment,
    value_at,
    zeros_like,
)
from optimizers.registry import (
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)

# Added to the second moment under the square root, as pytorch_optimizer's LaProp does.
EPS_ROOT = 1e-15


class LapropState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum m of the lr-scaled, preconditioned gradients
    nu: Any  # second moment v
    mean: Any  # moving average of the gradients (centered=True), else ()
    nu_max: Any  # running maximum of the second moment (ams_bound=True), else ()
    lr_mean: jax.Array  # moving average of the learning rates, b1-weighted as m


def shrink_after_step(updates, params, shrink):
    """The updates of the step theta_t = (theta_{t-1} + u_t) * (1 - shrink), leaf by leaf:
    u_t - shrink * (theta_{t-1} + u_t), a weight decay applied after the step."""
    return jax.tree.map(lambda u, p: u - jnp.asarray(shrink, u.dtype) * (p + u), updates, params)


def laprop(
    learning_rate: ScalarOrSchedule = 4e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-15,
    weight_decay: float = 0.0,
    *,
    centered: bool = False,
    steps_before_using_centered: int = 10,
    ams_bound: bool = False,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""LaProp (Ziyin et al., 2020): RMSProp's scaling of each gradient, then momentum.

    For step t = 1, 2, ... with gradient g_t, learning rate lr_t and weight decay wd:

        v_t      = b2 * v_{t-1} + (1 - b2) * g_t^2
        s_t      = v_t                       (or v_t - a_t^2 with centered=True, below)
        d_t      = (sqrt(s_t + 1e-15) + eps) / sqrt(1 - b2^t)
        m_t      = b1 * m_{t-1} + (1 - b1) * lr_t * g_t / d_t
        l_t      = b1 * l_{t-1} + (1 - b1) * lr_t          (l_0 = 0)
        theta_t  = (theta_{t-1} - lr_t / l_t * m_t) * (1 - lr_t * wd)

    The momentum averages steps already scaled by their learning rate, and l_t, the same
    average of the learning rates, is its bias correction: l_t = lr * (1 - b1^t) at a
    constant rate, where the step is lr * m_t / (lr * (1 - b1^t)). (At lr_t = 0 the step
    is m_t itself.) Options:

    - centered=True: a_t = b2 * a_{t-1} + (1 - b2) * g_t, and s_t = v_t - a_t^2 once t
      exceeds steps_before_using_centered (v_t before);
    - ams_bound=True: s_t is replaced by its running maximum max(s_1, ..., s_t);
    - fixed_decay=True: theta_t = (...) * (1 - wd), a decay not scaled by lr_t.

    The rule follows `pytorch_optimizer.LaProp` (arguments and defaults as there, with
    betas named b1 and b2), which differs from the paper's Algorithm 1 in three ways:
    eps is added to sqrt(v_t) before the division by sqrt(1 - b2^t) (so it acts as
    eps / sqrt(1 - b2^t) on the debiased scale) with 1e-15 under the root; the weight
    decay multiplies the params after the step; and its coupled decay
    (weight_decouple=False) changes the gradient only after the step has used it, so has
    no effect: only the decoupled decay is offered here.

    Reference: Ziyin, Wang and Ueda, "LaProp: Separating Momentum and Adaptivity in
    Adam", 2020 (arXiv:2002.04839).
    """
    check_given("learning_rate", learning_rate)
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        return LapropState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params),
            nu=zeros_like(params),
            mean=zeros_like(params) if centered else (),
            nu_max=zeros_like(params) if ams_bound else (),
            lr_mean=jnp.zeros([], state_dtype(lowest_dtype(params))),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, LapropState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        lr = value_at(learning_rate, state.count)
        nu = update_moment(grads, state.nu, b2, 2)
        second = nu
        mean = ()
        if centered:
            mean = update_moment(grads, state.mean, b2, 1)
            centred = jax.tree.map(lambda v, a: v - a * a, nu, mean)
            second = jax.tree.map(
                lambda v, c: jnp.where(t > steps_before_using_centered, c, v), nu, centred
            )
        nu_max = ()
        if ams_bound:
            nu_max = jax.tree.map(jnp.maximum, state.nu_max, second)
            second = nu_max
        # Bias corrections in the counter's float type, cast to each leaf's dtype.
        root_correction2 = jnp.sqrt(1 - b2**t)
        scaled = jax.tree.map(
            lambda g, s: (
                jnp.asarray(lr, s.dtype)
                * (g / ((jnp.sqrt(s + EPS_ROOT) + eps) / root_correction2.astype(s.dtype)))
            ),
            grads,
            second,
        )
        mu = update_moment(scaled, state.mu, b1, 1)
        lr_mean = (b1 * state.lr_mean + (1 - b1) * lr).astype(state.lr_mean.dtype)
        # lr_t / l_t, the step's factor; 1 at lr_t = 0 (where l_t may be 0 too).
        nonzero = lr != 0
        factor = jnp.where(nonzero, lr / jnp.where(nonzero, lr_mean, 1), 1)
        updates = jax.tree.map(lambda m: -jnp.asarray(factor, m.dtype) * m, mu)
        if not (isinstance(weight_decay, int | float) and weight_decay == 0):
            require_params("laprop's weight decay", params)
            shrink = weight_decay if fixed_decay else lr * weight_decay
            updates = shrink_after_step(updates, params, shrink)
        new_state = LapropState(
            count=t,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            mean=cast_like(mean, state.mean),
            nu_max=cast_like(nu_max, state.nu_max),
            lr_mean=lr_mean,
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper trains with Adam's learning rates (4e-4 is the reference's default).
    "laprop": OptimizerSpec(
        laprop,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "eps": Range(1e-16, 1e-6, "log"),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 LaProp",
    ),
}
__all__ = ["LapropState", "laprop"]
