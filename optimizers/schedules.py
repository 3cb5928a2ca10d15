"""Learning-rate schedules: functions `count -> value`, with the names and arguments of optax.

Every factory here returns a pure function of the (int32) step count that works on
a scalar or, under `vmap`, on a batch of counts, and may be passed as
`learning_rate` to any optimizer. Values are the same expressions as optax's, in
the same order of operations, so that they agree to rounding. Besides optax's
schedules there is the textbook `inverse_time_decay`, lr / (1 + k t).

Where optax's documentation states a requirement ("must be positive", "non-negative
scale factors"), a concrete argument that breaks it raises ValueError naming the
argument, rather than being logged and silently replaced as optax does. The one
documented fallback kept is optax's: `polynomial_schedule` (and so `linear_schedule`
and the warmups) with `transition_steps <= 0` holds `init_value` constant.
"""

from collections.abc import Iterable, Sequence

import jax.numpy as jnp

from optimizers.base import Schedule, check_nonnegative


def _check_steps(name: str, value, minimum: int = 0) -> None:
    """Raises ValueError naming `name` unless `value` is an integer >= `minimum`."""
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_scales(boundaries_and_scales) -> None:
    if boundaries_and_scales and not all(s >= 0 for s in boundaries_and_scales.values()):
        raise ValueError(
            f"boundaries_and_scales must have non-negative scales, got {boundaries_and_scales!r}"
        )


def constant_schedule(value) -> Schedule:
    """value_t = value."""
    return lambda count: value


def polynomial_schedule(
    init_value, end_value, power, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Polynomial decay from `init_value` to `end_value` over `transition_steps` steps.

        s       = clip(t - transition_begin, 0, transition_steps)
        value_t = (init_value - end_value) * (1 - s / transition_steps)^power + end_value

    `transition_steps <= 0` disables the transition: value_t = init_value.
    """
    _check_steps("transition_begin", transition_begin)
    if transition_steps <= 0:
        return lambda count: init_value

    def schedule(count):
        count = jnp.clip(count - transition_begin, 0, transition_steps)
        fraction_left = 1 - count / transition_steps
        return (init_value - end_value) * fraction_left**power + end_value

    return schedule


def linear_schedule(
    init_value, end_value, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear interpolation from `init_value` to `end_value`: `polynomial_schedule`, power 1."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def exponential_decay(
    init_value,
    transition_steps: int,
    decay_rate,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value=None,
) -> Schedule:
    r"""Exponential decay by `decay_rate` every `transition_steps` steps.

        p       = (t - transition_begin) / transition_steps     (floored if staircase)
        value_t = init_value                    for t <= transition_begin
        value_t = init_value * decay_rate^p     otherwise,

    bounded below by `end_value` when decay_rate < 1 (above when decay_rate > 1).
    """
    _check_steps("transition_steps", transition_steps, minimum=1)
    _check_steps("transition_begin", transition_begin)
    check_nonnegative("decay_rate", decay_rate)
    if isinstance(decay_rate, int | float) and decay_rate == 0:
        raise ValueError("decay_rate must not be zero")

    def schedule(count):
        steps_since_begin = count - transition_begin
        p = steps_since_begin / transition_steps
        if staircase:
            p = jnp.floor(p)
        decayed = jnp.where(
            steps_since_begin <= 0, init_value, init_value * jnp.power(decay_rate, p)
        )
        if end_value is None:
            return decayed
        return jnp.where(
            decay_rate < 1, jnp.maximum(decayed, end_value), jnp.minimum(decayed, end_value)
        )

    return schedule


def cosine_decay_schedule(init_value, decay_steps: int, alpha=0.0, exponent=1.0) -> Schedule:
    r"""Cosine decay (Loshchilov & Hutter, ICLR 2017) from `init_value` to `alpha * init_value`.

    c       = (1 + cos(pi * min(t, decay_steps) / decay_steps)) / 2
    value_t = init_value * ((1 - alpha) * c^exponent + alpha)
    """
    _check_steps("decay_steps", decay_steps, minimum=1)
    decay_steps = float(decay_steps)

    def schedule(count):
        count = jnp.minimum(count, decay_steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / decay_steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Runs `schedules[i + 1]` from step `boundaries[i]` on, with its count restarted at zero."""
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"boundaries must have one entry fewer than schedules, got {len(boundaries)} "
            f"boundaries for {len(schedules)} schedules"
        )

    def schedule(count):
        value = schedules[0](count)
        for boundary, later in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(count < boundary, value, later(count - boundary))
        return value

    return schedule


def warmup_constant_schedule(init_value, peak_value, warmup_steps: int) -> Schedule:
    """Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then constant."""
    _check_steps("warmup_steps", warmup_steps)
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(
    init_value, peak_value, warmup_steps: int, decay_steps: int, end_value=0.0, exponent=1.0
) -> Schedule:
    """Linear warmup to `peak_value`, then cosine decay to `end_value`.

    `decay_steps` counts the warmup too: the cosine lasts `decay_steps - warmup_steps`.
    """
    _check_steps("warmup_steps", warmup_steps)
    if not decay_steps > warmup_steps:
        raise ValueError(
            f"decay_steps must exceed warmup_steps, got decay_steps={decay_steps!r} "
            f"and warmup_steps={warmup_steps!r}"
        )
    # alpha = end_value / peak_value, and 0 for a zero peak (as optax); jnp keeps it traceable.
    alpha = jnp.where(peak_value == 0.0, 0.0, jnp.divide(end_value, peak_value))
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )


def warmup_exponential_decay_schedule(
    init_value,
    peak_value,
    warmup_steps: int,
    transition_steps: int,
    decay_rate,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value=None,
) -> Schedule:
    """Linear warmup to `peak_value`, then `exponential_decay` from `peak_value`."""
    _check_steps("warmup_steps", warmup_steps)
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            exponential_decay(
                peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
            ),
        ],
        [warmup_steps],
    )


def piecewise_constant_schedule(init_value, boundaries_and_scales=None) -> Schedule:
    """init_value times the product of every scale whose boundary step t has reached."""
    _check_scales(boundaries_and_scales)
    steps = sorted((boundaries_and_scales or {}).items())

    def schedule(count):
        value = init_value
        for boundary, scale in steps:
            value = jnp.where(count < boundary, value, scale * value)
        return value

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value, boundaries_and_scales=None
) -> Schedule:
    r"""Interpolates, linearly or by a half cosine, between accumulated values at boundaries.

    With boundaries b_0 = 0 < b_1 < ... and values v_0 = init_value, v_i = v_{i-1} * scale_i,
    for b_{i-1} <= t < b_i and f = (t - b_{i-1}) / max(b_i - b_{i-1}, 1):

        linear:  value_t = (v_i - v_{i-1}) * f + v_{i-1}
        cosine:  value_t = v_i + (v_{i-1} - v_i) / 2 * (cos(pi f) + 1)

    and value_t = v_last from the last boundary on.
    """
    if interpolate_type not in ("linear", "cosine"):
        raise ValueError(f"interpolate_type must be 'linear' or 'cosine', got {interpolate_type!r}")
    _check_scales(boundaries_and_scales)
    steps = sorted((boundaries_and_scales or {}).items())
    boundaries = tuple(b for b, _ in steps)
    scales = tuple(s for _, s in steps)

    def interpolate(start, end, fraction):
        if interpolate_type == "linear":
            return (end - start) * fraction + start
        return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * fraction) + 1)

    def schedule(count):
        bounds = jnp.stack((0,) + boundaries)
        values = jnp.cumprod(jnp.stack((init_value,) + scales))
        lengths = jnp.maximum(bounds[1:] - bounds[:-1], 1)
        inside = jnp.logical_and(bounds[:-1] <= count, count < bounds[1:])
        fraction = (count - bounds[:-1]) / lengths
        return (
            inside.dot(interpolate(values[:-1], values[1:], fraction))
            + (bounds[-1] <= count) * values[-1]
        )

    return schedule


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle (Smith & Topin, "Super-Convergence", 2017), three linear phases.

    Up from peak_value / div_factor to peak_value until pct_start * transition_steps,
    back down to peak_value / div_factor at pct_final * transition_steps, then down to
    peak_value / div_factor / final_div_factor at transition_steps.
    """
    _check_steps("transition_steps", transition_steps, minimum=1)
    return piecewise_interpolate_schedule(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(pct_final * transition_steps): 1.0 / div_factor,
            transition_steps: 1.0 / final_div_factor,
        },
    )


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle (Smith & Topin, 2017) with half-cosine phases.

    Up from peak_value / div_factor to peak_value until pct_start * transition_steps,
    then down to peak_value / (div_factor * final_div_factor) at transition_steps.
    """
    _check_steps("transition_steps", transition_steps, minimum=1)
    return piecewise_interpolate_schedule(
        "cosine",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(transition_steps): 1.0 / (div_factor * final_div_factor),
        },
    )


def sgdr_schedule(cosine_kwargs: Iterable[dict]) -> Schedule:
    """SGD with warm restarts (Loshchilov & Hutter, ICLR 2017).

    One `warmup_cosine_decay_schedule(**kwargs)` cycle per entry of `cosine_kwargs`,
    each lasting its `decay_steps`, run one after the other.
    """
    schedules, boundaries, step = [], [], 0
    for kwargs in cosine_kwargs:
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += kwargs["decay_steps"]
        boundaries.append(step)
    if not schedules:
        raise ValueError("cosine_kwargs must hold at least one cycle")
    return join_schedules(schedules, boundaries[:-1])


def inverse_time_decay(learning_rate, decay_rate) -> Schedule:
    r"""Inverse-time decay, value_t = learning_rate / (1 + decay_rate * t).

    The classic Robbins-Monro step size: with decay_rate > 0 the steps sum to
    infinity while their squares do not. Example: learning_rate=0.1, decay_rate=0.01
    gives 0.1 / 1.1 at t = 10.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("decay_rate", decay_rate)

    def schedule(count):
        return learning_rate / (1 + decay_rate * count)

    return schedule
