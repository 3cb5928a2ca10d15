"""Every schedule equals optax's at each of 10,000 steps; bad arguments raise ValueError."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optimizers import schedules

STEPS = 10_000

# (name, keyword arguments) shared by ours and optax's; boundaries fall inside the
# 10,000 steps so that every phase of every schedule is exercised.
CASES = [
    ("constant_schedule", dict(value=0.3)),
    ("linear_schedule", dict(init_value=1.0, end_value=0.01, transition_steps=7000)),
    (
        "linear_schedule",
        dict(init_value=0.1, end_value=0.5, transition_steps=3000, transition_begin=2500),
    ),
    ("linear_schedule", dict(init_value=0.2, end_value=0.5, transition_steps=0)),
    (
        "polynomial_schedule",
        dict(init_value=1.0, end_value=1e-3, power=2.5, transition_steps=6000, transition_begin=10),
    ),
    ("exponential_decay", dict(init_value=0.5, transition_steps=700, decay_rate=0.8)),
    (
        "exponential_decay",
        dict(
            init_value=0.5,
            transition_steps=700,
            decay_rate=0.8,
            transition_begin=300,
            staircase=True,
            end_value=0.02,
        ),
    ),
    (
        "exponential_decay",
        dict(init_value=1e-3, transition_steps=900, decay_rate=1.5, end_value=2.0),
    ),
    ("cosine_decay_schedule", dict(init_value=0.4, decay_steps=8000)),
    ("cosine_decay_schedule", dict(init_value=0.4, decay_steps=5000, alpha=0.1, exponent=2.0)),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.0, peak_value=1.0, warmup_steps=500, decay_steps=9000, end_value=1e-3),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.1, peak_value=0.0, warmup_steps=100, decay_steps=400, exponent=0.5),
    ),
    ("warmup_constant_schedule", dict(init_value=0.01, peak_value=0.3, warmup_steps=1234)),
    (
        "warmup_exponential_decay_schedule",
        dict(
            init_value=0.0,
            peak_value=0.8,
            warmup_steps=400,
            transition_steps=300,
            decay_rate=0.9,
            transition_begin=50,
            staircase=True,
            end_value=1e-2,
        ),
    ),
    (
        "piecewise_constant_schedule",
        dict(init_value=0.5, boundaries_and_scales={3000: 0.1, 1000: 0.5, 9999: 2.0}),
    ),
    ("piecewise_constant_schedule", dict(init_value=0.5)),
    (
        "piecewise_interpolate_schedule",
        dict(interpolate_type="linear", init_value=1.0, boundaries_and_scales={400: 0.1, 5000: 3}),
    ),
    (
        "piecewise_interpolate_schedule",
        dict(interpolate_type="cosine", init_value=2.0, boundaries_and_scales={7000: 0.2, 10: 4}),
    ),
    ("piecewise_interpolate_schedule", dict(interpolate_type="linear", init_value=0.7)),
    ("linear_onecycle_schedule", dict(transition_steps=8000, peak_value=0.9)),
    (
        "linear_onecycle_schedule",
        dict(
            transition_steps=5000,
            peak_value=0.2,
            pct_start=0.1,
            pct_final=0.7,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
    ("cosine_onecycle_schedule", dict(transition_steps=9000, peak_value=0.9)),
    (
        "cosine_onecycle_schedule",
        dict(transition_steps=3000, peak_value=1.5, pct_start=0.5, div_factor=5.0),
    ),
    (
        "sgdr_schedule",
        dict(
            cosine_kwargs=[
                dict(init_value=0.0, peak_value=1.0, warmup_steps=100, decay_steps=2000),
                dict(init_value=0.0, peak_value=0.5, warmup_steps=50, decay_steps=3000),
                dict(
                    init_value=0.1, peak_value=0.2, warmup_steps=0, decay_steps=4000, end_value=0.05
                ),
            ]
        ),
    ),
]


def values(schedule):
    """The schedule at steps 0 .. STEPS-1, as one jit(vmap) over int32 counts."""
    counts = jnp.arange(STEPS, dtype=jnp.int32)
    # jnp.asarray: a constant schedule returns its Python number, which vmap cannot batch.
    return np.asarray(jax.jit(jax.vmap(lambda t: jnp.asarray(schedule(t))))(counts))


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_schedule_equals_optax_at_every_step(name, kwargs):
    ours = values(getattr(schedules, name)(**kwargs))
    theirs = values(getattr(optax, name)(**kwargs))
    assert ours.shape == theirs.shape == (STEPS,)
    assert np.all(np.isfinite(theirs))
    # Both evaluate the same float64 expressions in the same order; 1e-12 relative
    # leaves room for a different fusion of a handful of operations (each 1.1e-16),
    # atol 1e-15 for values that reach exactly zero.
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_join_schedules_equals_optax():
    parts = [
        (optax.constant_schedule(0.1), schedules.constant_schedule(0.1)),
        (optax.linear_schedule(0.1, 0.9, 2000), schedules.linear_schedule(0.1, 0.9, 2000)),
        (optax.cosine_decay_schedule(1.0, 3000), schedules.cosine_decay_schedule(1.0, 3000)),
    ]
    boundaries = [1000, 4000]
    ours = values(schedules.join_schedules([o for _, o in parts], boundaries))
    theirs = values(optax.join_schedules([t for t, _ in parts], boundaries))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    # And the joined schedule really switches: 0.1 before step 1000, 0.1 again at 1000.
    assert ours[999] == pytest.approx(0.1) and ours[1000] == pytest.approx(0.1)
    assert ours[4000] == pytest.approx(1.0)


def test_inverse_time_decay_worked_example():
    schedule = schedules.inverse_time_decay(learning_rate=0.1, decay_rate=0.01)
    # lr / (1 + k t): 0.1 at t = 0, 0.1 / 1.1 at t = 10, 0.1 / 101 at t = 10,000.
    assert float(schedule(0)) == pytest.approx(0.1, rel=1e-15)
    assert float(schedule(10)) == pytest.approx(0.1 / 1.1, rel=1e-15)
    assert float(schedule(10_000)) == pytest.approx(0.1 / 101, rel=1e-15)
    t = np.arange(STEPS, dtype=np.float64)
    np.testing.assert_allclose(values(schedule), 0.1 / (1 + 0.01 * t), rtol=1e-15)


def test_a_schedule_drives_an_optimizer():
    """A schedule passed as learning_rate is evaluated at the optimizer's step count."""
    from optimizers import sgd

    opt = sgd(learning_rate=schedules.inverse_time_decay(0.1, 1.0))
    params = jnp.zeros(())
    state = opt.init(params)
    steps = []
    for _ in range(3):
        updates, state = opt.update(jnp.ones(()), state, params)
        steps.append(-float(updates))
    # t = 0, 1, 2: lr = 0.1, 0.05, 0.1 / 3.
    np.testing.assert_allclose(steps, [0.1, 0.05, 0.1 / 3], rtol=1e-15)


BAD = [
    (
        "polynomial_schedule",
        dict(init_value=1, end_value=0, power=1, transition_steps=9, transition_begin=-1),
        "transition_begin",
    ),
    (
        "linear_schedule",
        dict(init_value=1, end_value=0, transition_steps=10, transition_begin=-5),
        "transition_begin",
    ),
    (
        "exponential_decay",
        dict(init_value=1, transition_steps=0, decay_rate=0.5),
        "transition_steps",
    ),
    ("exponential_decay", dict(init_value=1, transition_steps=10, decay_rate=0.0), "decay_rate"),
    ("exponential_decay", dict(init_value=1, transition_steps=10, decay_rate=-0.5), "decay_rate"),
    ("cosine_decay_schedule", dict(init_value=1, decay_steps=0), "decay_steps"),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0, peak_value=1, warmup_steps=10, decay_steps=10),
        "decay_steps",
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0, peak_value=1, warmup_steps=-1, decay_steps=10),
        "warmup_steps",
    ),
    ("warmup_constant_schedule", dict(init_value=0, peak_value=1, warmup_steps=-3), "warmup_steps"),
    (
        "piecewise_constant_schedule",
        dict(init_value=1, boundaries_and_scales={10: -0.1}),
        "boundaries_and_scales",
    ),
    (
        "piecewise_interpolate_schedule",
        dict(interpolate_type="cubic", init_value=1),
        "interpolate_type",
    ),
    (
        "piecewise_interpolate_schedule",
        dict(interpolate_type="linear", init_value=1, boundaries_and_scales={5: -1}),
        "boundaries_and_scales",
    ),
    ("linear_onecycle_schedule", dict(transition_steps=0, peak_value=1), "transition_steps"),
    ("cosine_onecycle_schedule", dict(transition_steps=-10, peak_value=1), "transition_steps"),
    ("sgdr_schedule", dict(cosine_kwargs=[]), "cosine_kwargs"),
    (
        "join_schedules",
        dict(schedules=[schedules.constant_schedule(1)], boundaries=[5]),
        "boundaries",
    ),
    ("inverse_time_decay", dict(learning_rate=-0.1, decay_rate=0.01), "learning_rate"),
    ("inverse_time_decay", dict(learning_rate=0.1, decay_rate=-0.01), "decay_rate"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument"), BAD, ids=[f"{n}-{a}" for n, _, a in BAD])
def test_invalid_arguments_raise_value_error_naming_them(name, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        getattr(schedules, name)(**kwargs)


def test_every_optax_schedule_is_mirrored():
    tested = {name for name, _ in CASES} | {"join_schedules"}
    expected = {
        "constant_schedule", "linear_schedule", "polynomial_schedule", "exponential_decay",
        "cosine_decay_schedule", "warmup_cosine_decay_schedule", "warmup_constant_schedule",
        "warmup_exponential_decay_schedule", "piecewise_constant_schedule",
        "piecewise_interpolate_schedule", "sgdr_schedule", "linear_onecycle_schedule",
        "cosine_onecycle_schedule", "join_schedules",
    }  # fmt: skip
    assert expected <= tested
    assert all(callable(getattr(optax, name)) for name in expected)
