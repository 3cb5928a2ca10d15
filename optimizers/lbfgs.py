"""L-BFGS with a zoom line search satisfying the strong Wolfe conditions."""

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
    descend,
    increment,
    require_loss,
    require_params,
    zeros_like,
)
from optimizers.registry import GRADIENT, OptimizerSpec, log_grid

# The zoom line search of `optax.lbfgs`'s default, with optax's settings.
MAX_LINESEARCH_STEPS = 20
INCREASE_FACTOR = 2.0  # the interval search doubles the step
SLOPE_RTOL = 1e-4  # c1 of the sufficient-decrease (Armijo) condition
CURV_RTOL = 0.9  # c2 of the strong curvature condition
APPROX_DEC_RTOL = 1e-6  # approximate Wolfe conditions (Hager & Zhang, 2005)
INTERVAL_THRESHOLD = 1e-5  # the zoom gives up on a shorter interval


class LbfgsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    params: Any  # theta_{t-1}
    grads: Any  # g_{t-1}
    param_diffs: Any  # s_i = theta_i - theta_{i-1}, stacked on a leading memory axis
    grad_diffs: Any  # y_i = g_i - g_{i-1}, stacked likewise
    rhos: jax.Array  # rho_i = 1 / <y_i, s_i> (0 where that is 0), one per memory slot
    stepsize: jax.Array  # step the line search took last
    value: jax.Array  # f(theta_t), the line search's last value (inf: not evaluated)
    grad: Any  # grad f(theta_t) likewise: what `optax.value_and_grad_from_state` reads
    evaluations: jax.Array  # int32 evaluations of f and its gradient the line search made


def _vdot(x, y):
    """<x, y> over a tree, leaf by leaf in full precision, summed in leaf order."""
    leaves = jax.tree.map(
        lambda a, b: jnp.tensordot(a, b, a.ndim, precision=jax.lax.Precision.HIGHEST), x, y
    )
    return jax.tree.reduce(lambda a, b: a + b, leaves, initializer=0)


def _axpy(a, x, y):
    """y + a * x over a tree, for a scalar a."""
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def _two_loop(grads, param_diffs, grad_diffs, rhos, gamma, oldest):
    """H_t g by the two-loop recursion (Nocedal & Wright, Algorithm 7.4), H_t^0 = gamma I.

    Memory slots are visited newest to oldest, then back; empty slots have rho = 0 and
    leave the vector unchanged.
    """
    memory_size = rhos.shape[0]
    order = (oldest + jnp.arange(memory_size)) % memory_size
    # optax keeps rho in JAX's default float type (float64 once x64 is on) and so forms
    # the products with it there; doing the same keeps float32 runs equal to optax's.
    rhos = rhos.astype(jax.dtypes.canonicalize_dtype(jnp.float64))

    def newest_first(q, i):
        s, y = jax.tree.map(lambda m: m[i], (param_diffs, grad_diffs))
        alpha = rhos[i] * _vdot(s, q)
        return cast_like(_axpy(-alpha, y, q), q), alpha

    q, alphas = jax.lax.scan(newest_first, grads, order, reverse=True)
    r = jax.tree.map(lambda x: gamma * x, q)

    def oldest_first(r, i_alpha):
        i, alpha = i_alpha
        s, y = jax.tree.map(lambda m: m[i], (param_diffs, grad_diffs))
        beta = rhos[i] * _vdot(y, r)
        return cast_like(_axpy(alpha - beta, s, r), r), None

    r, _ = jax.lax.scan(oldest_first, r, (order, alphas))
    return r


class _Search(NamedTuple):
    """Carry of the zoom line search along theta + eta * d."""

    count: jax.Array  # evaluations made
    stepsize: jax.Array  # last step tried, eta
    value: jax.Array  # f(theta + eta d)
    grad: Any  # grad f(theta + eta d)
    slope: jax.Array  # <grad f(theta + eta d), d>
    decrease_error: jax.Array  # how far eta is from sufficient decrease (0: satisfied)
    interval_found: jax.Array  # phase 2 (zoom) once an interval holds a Wolfe step
    done: jax.Array
    failed: jax.Array
    low: jax.Array  # the end of the interval with the lower value (not the smaller step)
    value_low: jax.Array
    slope_low: jax.Array
    high: jax.Array
    value_high: jax.Array
    slope_high: jax.Array
    cubic_ref: jax.Array  # third point of the cubic interpolation
    value_cubic_ref: jax.Array
    safe_stepsize: jax.Array  # best step with sufficient decrease seen, 0 if none
    safe_value: jax.Array
    safe_grad: Any


def _cubic_minimiser(a, fa, fpa, b, fb, c, fc):
    """Minimiser of the cubic through (a, fa) with slope fpa, (b, fb) and (c, fc)."""
    db, dc = b - a, c - a
    denominator = (db * dc) ** 2 * (db - dc)
    matrix = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    residuals = jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc])
    cubic, quadratic = jnp.dot(matrix, residuals, precision=jax.lax.Precision.HIGHEST) / denominator
    return a + (-quadratic + jnp.sqrt(quadratic**2 - 3.0 * cubic * fpa)) / (3.0 * cubic)


def _quadratic_minimiser(a, fa, fpa, b, fb):
    """Minimiser of the parabola through (a, fa) with slope fpa and (b, fb)."""
    db = b - a
    curvature = (fb - fa - fpa * db) / db**2
    return a - fpa / (2.0 * curvature)


def zoom_linesearch(value_and_grad, params, direction, value, grad):
    """A step eta along `direction` satisfying the strong Wolfe conditions, as optax's zoom.

    Algorithms 3.5 (interval search, eta = 1, 2, 4, ...) and 3.6 (zoom by cubic, then
    quadratic, then bisection steps) of Nocedal & Wright, with sufficient decrease

        f(theta + eta d) <= f(theta) + c1 eta <grad f(theta), d>

    relaxed to the approximate Wolfe conditions of Hager & Zhang near the optimum, and the
    curvature condition |<grad f(theta + eta d), d>| <= c2 |<grad f(theta), d>|. A
    `lax.while_loop` of at most MAX_LINESEARCH_STEPS evaluations; when it runs out it
    falls back to the best step with sufficient decrease, if any.

    Returns the step, the value and gradient there, and the number of evaluations made.
    """
    value, slope_init = jnp.asarray(value), _vdot(direction, grad)

    def at(stepsize):
        new_value, new_grad = value_and_grad(_axpy(stepsize, direction, params))
        return new_value, new_grad, _vdot(new_grad, direction)

    def decrease_error(stepsize, new_value, new_slope):
        armijo = new_value - value - SLOPE_RTOL * stepsize * slope_init
        approximate = jnp.maximum(
            new_slope - (2 * SLOPE_RTOL - 1.0) * slope_init,
            new_value - value - APPROX_DEC_RTOL * jnp.abs(value),
        )
        error = jnp.maximum(jnp.minimum(approximate, armijo), 0.0)
        return jnp.where(jnp.isnan(error), jnp.inf, error)

    def curvature_error(new_slope):
        error = jnp.maximum(jnp.abs(new_slope) - CURV_RTOL * jnp.abs(slope_init), 0.0)
        return jnp.where(jnp.isnan(error), jnp.inf, error)

    def evaluate(stepsize):
        """f, grad f and the Wolfe errors at `stepsize`; the safe point updated."""
        new_value, new_grad, new_slope = at(stepsize)
        decrease = decrease_error(stepsize, new_value, new_slope)
        error = jnp.maximum(decrease, curvature_error(new_slope))
        return new_value, new_grad, new_slope, decrease, error

    def search_interval(state):
        """Phase 1: grow the step until an interval must contain a Wolfe step."""
        first = state.count == 0
        stepsize = jnp.where(first, jnp.asarray(1.0), INCREASE_FACTOR * state.stepsize)
        new_value, new_grad, new_slope, decrease, error = evaluate(stepsize)
        safe = decrease <= 0.0
        safe_stepsize, safe_value, safe_grad = jax.tree.map(
            lambda new, old: jnp.where(safe, new, old),
            (stepsize, new_value, new_grad),
            (state.safe_stepsize, state.safe_value, state.safe_grad),
        )
        high_is_new = (decrease > 0.0) | (new_value >= state.value) & ~first
        low_is_new = (new_slope >= 0.0) & ~high_is_new
        previous = (state.stepsize, state.value, state.slope)
        new = (stepsize, new_value, new_slope)
        low, value_low, slope_low = jax.tree.map(
            lambda n, p: jnp.where(low_is_new, n, p), new, previous
        )
        high, value_high, slope_high = jax.tree.map(
            lambda n, p: jnp.where(low_is_new, p, n), new, previous
        )
        done = error <= 0.0
        new_state = _Search(
            count=increment(state.count),
            stepsize=stepsize,
            value=new_value,
            grad=new_grad,
            slope=new_slope,
            decrease_error=decrease,
            interval_found=high_is_new | low_is_new | done,
            done=done,
            failed=(state.count + 1 >= MAX_LINESEARCH_STEPS) & ~done,
            low=low,
            value_low=value_low,
            slope_low=slope_low,
            high=high,
            value_high=value_high,
            slope_high=slope_high,
            cubic_ref=low,
            value_cubic_ref=value_low,
            safe_stepsize=safe_stepsize,
            safe_value=safe_value,
            safe_grad=safe_grad,
        )
        return cast_like(new_state, state)

    def zoom_into_interval(state):
        """Phase 2: shrink [low, high] around a Wolfe step by interpolation."""
        low, high = state.low, state.high
        delta = jnp.abs(high - low)
        left, right = jnp.minimum(high, low), jnp.maximum(high, low)
        cubic = _cubic_minimiser(
            low,
            state.value_low,
            state.slope_low,
            high,
            state.value_high,
            state.cubic_ref,
            state.value_cubic_ref,
        )
        use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
        quadratic = _quadratic_minimiser(
            low, state.value_low, state.slope_low, high, state.value_high
        )
        use_quadratic = (
            ~use_cubic & (quadratic > left + 0.1 * delta) & (quadratic < right - 0.1 * delta)
        )
        middle = jnp.where(use_cubic, cubic, state.cubic_ref)
        middle = jnp.where(use_quadratic, quadratic, middle)
        middle = jnp.where(~use_cubic & ~use_quadratic, (low + high) / 2.0, middle)

        new_value, new_grad, new_slope, decrease, error = evaluate(middle)
        better_safe = (decrease <= 0.0) & (new_value < state.safe_value)
        safe_stepsize, safe_value, safe_grad = jax.tree.map(
            lambda new, old: jnp.where(better_safe, new, old),
            (middle, new_value, new_grad),
            (state.safe_stepsize, state.safe_value, state.safe_grad),
        )
        done = error <= 0.0
        high_to_middle = (decrease > 0.0) | (new_value >= state.value_low)
        high_to_low = (new_slope * (high - low) >= 0.0) & ~high_to_middle
        new = (middle, new_value, new_slope)
        old_low = (low, state.value_low, state.slope_low)
        old_high = (high, state.value_high, state.slope_high)
        new_high = jax.tree.map(lambda n, h: jnp.where(high_to_middle, n, h), new, old_high)
        new_high = jax.tree.map(lambda lo, h: jnp.where(high_to_low, lo, h), old_low, new_high)
        new_low = jax.tree.map(lambda n, lo: jnp.where(high_to_middle, lo, n), new, old_low)
        high_moved = high_to_middle | high_to_low
        cubic_ref = jnp.where(high_moved, high, low)
        value_cubic_ref = jnp.where(high_moved, state.value_high, state.value_low)
        gave_up = (state.count + 1 >= MAX_LINESEARCH_STEPS) | (delta <= INTERVAL_THRESHOLD) & (
            safe_stepsize > 0.0
        )
        new_state = _Search(
            count=increment(state.count),
            stepsize=middle,
            value=new_value,
            grad=new_grad,
            slope=new_slope,
            decrease_error=decrease,
            interval_found=state.interval_found,
            done=done,
            failed=gave_up & ~done,
            low=new_low[0],
            value_low=new_low[1],
            slope_low=new_low[2],
            high=new_high[0],
            value_high=new_high[1],
            slope_high=new_high[2],
            cubic_ref=cubic_ref,
            value_cubic_ref=value_cubic_ref,
            safe_stepsize=safe_stepsize,
            safe_value=safe_value,
            safe_grad=safe_grad,
        )
        return cast_like(new_state, state)

    def step(state):
        new = jax.lax.cond(state.interval_found, zoom_into_interval, search_interval, state)
        # On failure fall back to the safe step, or to the last one if none was safe
        # (unless f was not even finite there, in which case the safe step is 0).
        fall_back = new.failed & ((new.safe_stepsize > 0.0) | jnp.isinf(new.decrease_error))
        stepsize, value, grad = jax.tree.map(
            lambda safe, last: jnp.where(fall_back, safe, last),
            (new.safe_stepsize, new.safe_value, new.safe_grad),
            (new.stepsize, new.value, new.grad),
        )
        return cast_like(new._replace(stepsize=stepsize, value=value, grad=grad), state)

    # As in optax, the step and values keep the loss's dtype while the interval ends and the
    # errors take JAX's default float type (float64 once x64 is on); each phase casts its
    # result back to these dtypes, so float32 runs round exactly as optax's do.
    dtype = jnp.result_type(value)
    zero, no_step = jnp.zeros([], dtype), jnp.asarray(0.0)
    start = _Search(
        count=jnp.zeros([], jnp.int32),
        stepsize=zero,
        value=jnp.asarray(value, dtype),
        grad=grad,
        slope=slope_init,
        decrease_error=jnp.asarray(jnp.inf),
        interval_found=jnp.asarray(False),
        done=jnp.asarray(False),
        failed=jnp.asarray(False),
        low=no_step,
        value_low=value,
        slope_low=slope_init,
        high=no_step,
        value_high=value,
        slope_high=slope_init,
        cubic_ref=no_step,
        value_cubic_ref=value,
        safe_stepsize=no_step,
        safe_value=value,
        safe_grad=grad,
    )
    final = jax.lax.while_loop(
        lambda s: ~(s.done | s.failed) & (s.count < MAX_LINESEARCH_STEPS), step, start
    )
    return final.stepsize, final.value, final.grad, final.count


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: str | None = "zoom",
) -> Optimizer:
    r"""L-BFGS (Liu & Nocedal, 1989) with a strong-Wolfe zoom line search, as `optax.lbfgs`.

    With s_i = theta_i - theta_{i-1}, y_i = g_i - g_{i-1}, rho_i = 1 / <y_i, s_i> for
    the last `memory_size` steps:

        gamma_t = <y_t, s_t> / <y_t, y_t>       (scale_init_precond; min(1, 1/||g_1||) at t = 1)
        p_t     = H_t g_t      by the two-loop recursion from H_t^0 = gamma_t I
        d_t     = -lr_t * p_t                  (-p_t when learning_rate is None)
        eta_t   = zoom line search along d_t from eta = 1 (see `zoom_linesearch`)
        theta_t = theta_{t-1} + eta_t * d_t

    The update needs the loss: `update(grads, state, params, value=f(params),
    grad=grads, value_fn=f, **f_kwargs)`, as optax's. `linesearch` is "zoom" (optax's
    default `scale_by_zoom_linesearch(max_linesearch_steps=20,
    initial_guess_strategy='one')`) or None (eta_t = 1); other line searches are not
    supported. Params must be real (optax's also takes complex ones).

    The state keeps f and its gradient at the new params, where the line search ended,
    as optax's does: `optax.value_and_grad_from_state(f)(params, state=state)` returns
    them without evaluating f again (and evaluates f where the state has none), and the
    number of evaluations of f and its gradient the line search made (`evaluations`).

    References: Liu & Nocedal, "On the limited memory BFGS method for large scale
    optimization", Mathematical Programming 45, 1989; Nocedal & Wright, "Numerical
    Optimization", 2nd ed., Algorithms 3.5, 3.6 and 7.4, 2006.
    """
    if learning_rate is not None:
        check_nonnegative("learning_rate", learning_rate)
    if not isinstance(memory_size, int) or memory_size < 1:
        raise ValueError(f"memory_size must be an int >= 1, got {memory_size!r}")
    if linesearch is not None and not (isinstance(linesearch, str) and linesearch == "zoom"):
        raise NotImplementedError(
            f"linesearch={linesearch!r} is not supported by lbfgs (only 'zoom', the zoom line "
            "search of optax.lbfgs's default, or None)"
        )

    def init(params):
        if any(jnp.iscomplexobj(p) for p in jax.tree.leaves(params)):
            raise TypeError("lbfgs takes real params only; got a complex leaf in params")
        dtype = jax.tree.leaves(params)[0].dtype

        def memory():  # a fresh tree per slot: state buffers never alias, so they donate
            return jax.tree.map(lambda p: jnp.zeros((memory_size, *p.shape), p.dtype), params)

        return LbfgsState(
            count=jnp.zeros([], jnp.int32),
            params=zeros_like(params),
            grads=zeros_like(params),
            param_diffs=memory(),
            grad_diffs=memory(),
            rhos=jnp.zeros(memory_size, dtype),
            stepsize=jnp.ones([], dtype),
            value=jnp.asarray(jnp.inf, dtype),
            grad=zeros_like(params),
            evaluations=jnp.zeros([], jnp.int32),
        )

    def update(grads, state, params=None, *, value=None, grad=None, value_fn=None, **fn_kwargs):
        check_state(state, LbfgsState)
        require_params("lbfgs", params)
        check_same_tree(grads, params, "grads", "params")
        started = state.count > 0
        newest, oldest = (state.count - 1) % memory_size, state.count % memory_size
        s = jax.tree.map(lambda p, q: jnp.where(started, p - q, 0), params, state.params)
        y = jax.tree.map(lambda g, h: jnp.where(started, g - h, 0), grads, state.grads)
        y_dot_s = _vdot(y, s)
        rho = jnp.where(y_dot_s == 0.0, 0.0, 1.0 / y_dot_s)
        param_diffs = jax.tree.map(lambda m, x: m.at[newest].set(x), state.param_diffs, s)
        grad_diffs = jax.tree.map(lambda m, x: m.at[newest].set(x), state.grad_diffs, y)
        rhos = state.rhos.at[newest].set(rho)
        if scale_init_precond:
            y_dot_y = jax.tree.reduce(
                lambda a, b: a + b, jax.tree.map(lambda x: jnp.sum(x**2), y), initializer=0
            )
            gamma = jnp.where(y_dot_y > 0.0, y_dot_s / y_dot_y, 1.0)
            grad_norm = jnp.sqrt(
                jax.tree.reduce(
                    lambda a, b: a + b, jax.tree.map(lambda x: jnp.sum(x**2), grads), initializer=0
                )
            )
            # The first step, with no curvature pair yet, is at most of unit length.
            gamma = jnp.where(started, gamma, jnp.minimum(1.0, 1.0 / grad_norm))
        else:
            gamma = 1.0
        preconditioned = _two_loop(grads, param_diffs, grad_diffs, rhos, gamma, oldest)
        if learning_rate is None:
            direction = jax.tree.map(lambda p: -1.0 * p, preconditioned)
        else:
            direction = descend(learning_rate, state.count, preconditioned)

        if linesearch is None:
            stepsize = jnp.ones([], state.stepsize.dtype)
            new_value, new_grad, evaluations = jnp.inf, state.grad, jnp.zeros([], jnp.int32)
        else:
            require_loss("lbfgs's line search", value=value, value_fn=value_fn)
            value_and_grad = jax.value_and_grad(lambda p: value_fn(p, **fn_kwargs))
            grad = grads if grad is None else grad
            stepsize, new_value, new_grad, evaluations = zoom_linesearch(
                value_and_grad, params, direction, value, grad
            )
        updates = jax.tree.map(lambda d: stepsize * d, direction)
        new_state = LbfgsState(
            count=increment(state.count),
            params=params,
            grads=grads,
            param_diffs=param_diffs,
            grad_diffs=grad_diffs,
            rhos=rhos,
            stepsize=jnp.asarray(stepsize, state.stepsize.dtype),
            value=jnp.asarray(new_value, state.value.dtype),
            grad=cast_like(new_grad, state.grad),
            evaluations=evaluations,
        )
        return updates, new_state

    return Optimizer(init, update)


REGISTRY = {
    "lbfgs": OptimizerSpec(
        lbfgs,
        log_grid(0.1, 1.0),
        optax_name="lbfgs",
        needs_value_fn=True,
        deterministic_only=True,
        # The line search's trial points; the last one is the accepted point, whose value
        # and gradient the next update is given from the state (stored_value_and_grad).
        # Only the first update is given a value and gradient evaluated for it, at x_0.
        gradient_evaluations=lambda state, dim: (state.count == 1) * GRADIENT + state.evaluations,
        stored_value_and_grad=lambda state: (state.value, state.grad),
        default_learning_rate=1.0,  # PyTorch
    ),
}
__all__ = ["LbfgsState", "lbfgs"]
