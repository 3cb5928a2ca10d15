"""Schedule-free learning: iterate averaging in place of a learning-rate schedule (SGD, AdamW)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers import schedules, transforms
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    descend,
    increment,
    lowest_dtype,
    require_params,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import (
    ADAM_SPACE,
    LR_GRID,
    MOMENTUM,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    log_grid,
)
from optimizers.sgd import sgd


class ScheduleFreeState(NamedTuple):
    b1: jax.Array  # the interpolation weight b1, kept for schedule_free_eval_params
    weight_sum: jax.Array  # sum of the averaging weights so far
    step_count: jax.Array  # int32, 1 at the first step: feeds the learning-rate schedule
    max_lr: jax.Array  # largest learning rate so far
    base_optimizer_state: Any
    z: Any  # the base optimizer's own iterate


def schedule_free_eval_params(state: ScheduleFreeState, params):
    """The averaged iterate x_t, where a schedule-free rule is to be evaluated.

    The params a schedule-free rule updates are y_t = b1 * x_t + (1 - b1) * z_t, the
    point its gradients are taken at; the loss that measures progress is at x_t.
    """
    return jax.tree.map(lambda y, z: (y - (1.0 - state.b1) * z) / state.b1, params, state.z)


def schedule_free(
    base_optimizer: Optimizer,
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    state_dtype: Any | None = None,
) -> Optimizer:
    r"""Schedule-free wrapper (Defazio et al., 2024): the base optimizer moves z, the
    average x of the z's is the output, and the gradient is taken between the two.

    For step t = 1, 2, ... with gradient g_t taken at y_{t-1} and lr_t the learning rate:

        z_t     = z_{t-1} + base_update(g_t)
        w_t     = max(lr_1, ..., lr_t)^weight_lr_power
        c_t     = w_t / (w_1 + ... + w_t)
        x_t     = (1 - c_t) * x_{t-1} + c_t * z_t
        y_t     = b1 * x_t + (1 - b1) * z_t

    with x_0 = y_0 = z_0 = theta_0. The params are y; `schedule_free_eval_params(state,
    params)` gives x, the point to evaluate the loss at. `learning_rate` must be the
    base optimizer's, which the averaging weights follow. z is kept in `state_dtype`
    when given. Same arguments and defaults as `optax.contrib.schedule_free`.

    References: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_nonnegative("weight_lr_power", weight_lr_power)

    def init(params):
        dtype = lowest_dtype(params)
        z = jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype, copy=True), params)
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype),
            weight_sum=jnp.zeros([], dtype),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], dtype),
            base_optimizer_state=base_optimizer.init(params),
            z=z,
        )

    def update(grads, state, params=None, **extra):
        require_params("schedule_free", params)
        check_same_tree(grads, params, "grads", "params")
        lr = learning_rate
        if callable(learning_rate):
            lr = jnp.asarray(learning_rate(state.step_count), state.max_lr.dtype)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr**weight_lr_power
        weight_sum = state.weight_sum + weight
        # c_t, with 0 / 0 = 0 (no step taken yet at lr = 0) and a NaN weight kept NaN.
        ck = jnp.where(
            jnp.isnan(weight) | jnp.isnan(weight_sum),
            jnp.full(weight.shape, jnp.nan),
            jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
        )
        base_updates, base_state = base_optimizer.update(
            grads, state.base_optimizer_state, params, **extra
        )
        z = jax.tree.map(lambda z, u: jnp.asarray(z + u).astype(z.dtype), state.z, base_updates)
        x_before = jax.tree.map(lambda y, z: (y - (1.0 - b1) * z) / b1, params, state.z)
        x = jax.tree.map(lambda x, z: (1.0 - ck) * x + ck * z, x_before, z)
        y = jax.tree.map(lambda x, z: b1 * x + (1.0 - b1) * z, x, z)
        updates = jax.tree.map(lambda new, old: new - old, y, params)
        return updates, ScheduleFreeState(
            b1=state.b1,
            weight_sum=weight_sum.astype(state.weight_sum.dtype),
            step_count=increment(state.step_count),
            max_lr=max_lr.astype(state.max_lr.dtype),
            base_optimizer_state=base_state,
            z=z,
        )

    return Optimizer(init, update)


def _with_warmup(learning_rate, warmup_steps):
    """A linear warm-up from 0 to `learning_rate` over `warmup_steps`, then constant."""
    if warmup_steps is None:
        return learning_rate
    return schedules.warmup_constant_schedule(0, learning_rate, warmup_steps)


def schedule_free_sgd(
    learning_rate: float = 1.0,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: float | None = None,
    weight_lr_power: float = 2.0,
    state_dtype: Any | None = None,
) -> Optimizer:
    r"""Schedule-free SGD: `schedule_free` around plain SGD.

        z_t = z_{t-1} - lr_t * (g_t + wd * y_{t-1})

    with x, y and the averaging of `schedule_free`; lr_t warms up linearly from 0 over
    `warmup_steps` when given. The params are y: evaluate the loss at
    `schedule_free_eval_params(state, params)`. Same arguments and defaults as
    `optax.contrib.schedule_free_sgd`.

    Reference: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    check_nonnegative("weight_decay", weight_decay)
    learning_rate = _with_warmup(learning_rate, warmup_steps)
    base = sgd(learning_rate)
    if weight_decay is not None:
        base = transforms.chain(transforms.add_decayed_weights(weight_decay), base)
    return schedule_free(base, learning_rate, b1, weight_lr_power, state_dtype)


class RmsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    nu: Any  # second moment v


def _rms_with_decoupled_decay(learning_rate, b2, eps, weight_decay) -> Optimizer:
    """Schedule-free AdamW's step on z: -lr_t * (g_t / (sqrt(vhat_t) + eps) + wd * y_{t-1})."""

    def init(params):
        return RmsState(count=jnp.zeros([], jnp.int32), nu=zeros_like(params))

    def update(grads, state, params=None, **extra):
        del extra
        t = increment(state.count)
        nu = update_moment(grads, state.nu, b2, 2)
        correction = 1 - b2**t
        # g times the reciprocal of the denominator, as optax.scale_by_rms rounds it.
        direction = jax.tree.map(
            lambda g, v: (1 / (jnp.sqrt(v / correction.astype(v.dtype)) + eps)) * g, grads, nu
        )
        direction = with_weight_decay(direction, params, weight_decay, state.count)
        return descend(learning_rate, state.count, direction), RmsState(
            count=t, nu=cast_like(nu, state.nu)
        )

    return Optimizer(init, update)


def schedule_free_adamw(
    learning_rate: float = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype: Any | None = None,
) -> Optimizer:
    r"""Schedule-free AdamW: `schedule_free` around Adam without momentum (RMSProp with
    bias correction) and decoupled weight decay.

        v_t = b2 * v_{t-1} + (1 - b2) * g_t^2
        z_t = z_{t-1} - lr_t * (g_t / (sqrt(v_t / (1 - b2^t)) + eps) + wd * y_{t-1})

    with x, y and the averaging of `schedule_free` (b1 takes the place of Adam's
    momentum); lr_t warms up linearly from 0 over `warmup_steps` when given. The params
    are y: evaluate the loss at `schedule_free_eval_params(state, params)`. Same
    arguments and defaults as `optax.contrib.schedule_free_adamw`.

    Reference: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    learning_rate = _with_warmup(learning_rate, warmup_steps)
    base = _rms_with_decoupled_decay(learning_rate, b2, eps, weight_decay)
    return schedule_free(base, learning_rate, b1, weight_lr_power, state_dtype)


REGISTRY = {
    # The paper's schedule-free SGD runs at 1-10x the learning rate of tuned SGD with
    # momentum; its AdamW at Adam's (1e-3 to 2.5e-2).
    "schedule_free_sgd": OptimizerSpec(
        schedule_free_sgd,
        log_grid(1e-3, 10.0),
        eval_params=schedule_free_eval_params,
        search_space={"b1": MOMENTUM, "weight_decay": WEIGHT_DECAY_OR_OFF},
    ),
    "schedule_free_adamw": OptimizerSpec(
        schedule_free_adamw,
        LR_GRID,
        eval_params=schedule_free_eval_params,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
    ),
}
__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
]
