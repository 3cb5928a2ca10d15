"""Schedule-free learning: iterate averaging in place of a learning-rate schedule (SGD, AdamW,
RAdam)."""

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
    check_state,
    check_unit_interval,
    descend,
    increment,
    lowest_dtype,
    require_params,
    update_moment,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.base import state_dtype as state_dtype_of
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


class ScheduleFreeRAdamState(NamedTuple):
    b1: jax.Array  # the interpolation weight b1, kept for schedule_free_eval_params
    count: jax.Array  # int32 number of updates taken
    weight_sum: jax.Array  # sum of the averaging weights so far
    max_lr: jax.Array  # largest rectified learning rate so far
    nu: Any  # second moment v
    z: Any  # the base iterate z


def schedule_free_radam(
    learning_rate: ScalarOrSchedule = 0.0025,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    *,
    silent_sgd_phase: bool = True,
) -> Optimizer:
    r"""Schedule-free RAdam: schedule-free AdamW whose step is RAdam's rectified one,
    which needs no warm-up.

    For step t = 1, 2, ... with gradient g_t taken at y_{t-1}:

        rho_inf = 2 / (1 - b2) - 1,   rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
        lr'_t   = lr_t * sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                  if rho_t > 4, else lr_t (silent_sgd_phase=False) or 0 (True)
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        d_t     = g_t / (sqrt(v_t / (1 - b2^t)) + eps)  if rho_t > 4, else g_t
        d_t    <- d_t + wd * y_{t-1}
        w_t     = t^r * max(lr'_1, ..., lr'_t)^weight_lr_power,   c_t = w_t / (w_1 + ... + w_t)
        y_t     = (1 - c_t) * y_{t-1} + c_t * z_{t-1} + lr'_t * (b1 * (1 - c_t) - 1) * d_t
        z_t     = z_{t-1} - lr'_t * d_t

    with z_0 = y_0 = theta_0 and c_t = 0 while every weight is 0 (the silent steps). y
    is the x_t, z_t interpolation of `schedule_free`, updated without forming x_t; the
    params are y: evaluate the loss at `schedule_free_eval_params(state, params)`. The
    first steps (rho_t <= 4: t <= 5 for b2 = 0.999) take plain gradient steps, or, with
    silent_sgd_phase=True, none (they only accumulate v_t). lr_t is a schedule's value at
    the number of updates taken before, where `learning_rate` is one. Same arguments and
    defaults as the reference implementation (the authors' `schedulefree`,
    `RAdamScheduleFree`).

    References: Defazio et al., "The Road Less Scheduled", NeurIPS 2024; Liu et al., "On
    the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("r", r)
    check_nonnegative("weight_lr_power", weight_lr_power)

    def init(params):
        dtype = state_dtype_of(lowest_dtype(params))
        return ScheduleFreeRAdamState(
            b1=jnp.asarray(b1, dtype),
            count=jnp.zeros([], jnp.int32),
            weight_sum=jnp.zeros([], dtype),
            max_lr=jnp.zeros([], dtype),
            nu=zeros_like(params),
            z=jax.tree.map(
                lambda p: jnp.array(p, dtype=state_dtype_of(p.dtype), copy=True), params
            ),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, ScheduleFreeRAdamState)
        del extra
        require_params("schedule_free_radam", params)
        check_same_tree(grads, params, "grads", "params")
        dtype = state.weight_sum.dtype
        # The step's scalars in float32 at least (a bfloat16 step count is not exact
        # past 256), stored in the state's dtype.
        wide = jnp.promote_types(dtype, jnp.float32)
        t = increment(state.count)
        step = t.astype(wide)
        b2_t = b2**step
        correction2 = 1 - b2_t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * b2_t / correction2
        rectified = rho_t > 4
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        rect = jnp.where(rectified, jnp.sqrt(jnp.maximum(ratio, 0.0)), float(not silent_sgd_phase))
        lr = jnp.asarray(value_at(learning_rate, state.count), wide) * rect
        max_lr = jnp.maximum(state.max_lr.astype(wide), lr)
        weight = step**r * max_lr**weight_lr_power
        weight_sum = state.weight_sum.astype(wide) + weight
        nonzero = weight_sum != 0
        ck = jnp.where(nonzero, weight / jnp.where(nonzero, weight_sum, 1), 0.0)
        adaptive_y_lr = (lr * (b1 * (1 - ck) - 1)).astype(dtype)
        lr, ck = lr.astype(dtype), ck.astype(dtype)
        nu = update_moment(grads, state.nu, b2, 2)
        direction = jax.tree.map(
            lambda g, v: jnp.where(
                rectified, g / (jnp.sqrt(v / correction2.astype(v.dtype)) + eps), g.astype(v.dtype)
            ),
            grads,
            nu,
        )
        direction = with_weight_decay(direction, params, weight_decay, state.count)
        y = jax.tree.map(
            lambda y, z, d: y + ck * (z - y) + adaptive_y_lr * d, params, state.z, direction
        )
        z = jax.tree.map(lambda z, d: (z - lr * d).astype(z.dtype), state.z, direction)
        updates = jax.tree.map(lambda new, old: new - old, y, params)
        return updates, ScheduleFreeRAdamState(
            b1=state.b1,
            count=t,
            weight_sum=weight_sum.astype(dtype),
            max_lr=max_lr.astype(dtype),
            nu=cast_like(nu, state.nu),
            z=z,
        )

    return Optimizer(init, update)


REGISTRY = {
    # The paper's schedule-free SGD runs at 1-10x the learning rate of tuned SGD with
    # momentum; its AdamW at Adam's (1e-3 to 2.5e-2).
    "schedule_free_sgd": OptimizerSpec(
        schedule_free_sgd,
        log_grid(1e-3, 10.0),
        eval_params=schedule_free_eval_params,
        search_space={"b1": MOMENTUM, "weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 schedule_free_sgd",
    ),
    "schedule_free_adamw": OptimizerSpec(
        schedule_free_adamw,
        LR_GRID,
        eval_params=schedule_free_eval_params,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="optax.contrib 0.2.8 schedule_free_adamw",
    ),
    # Schedule-free AdamW's learning rates: the rectification only shortens early steps.
    "schedule_free_radam": OptimizerSpec(
        schedule_free_radam,
        LR_GRID,
        eval_params=schedule_free_eval_params,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="schedulefree 1.4.1 RAdamScheduleFree",
    ),
}
__all__ = [
    "ScheduleFreeRAdamState",
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_radam",
    "schedule_free_sgd",
]
