"""L-BFGS and its zoom line search: what tests/test_parity.py does not cover.

test_parity.py already checks every step against optax.lbfgs (default zoom line search)
in float64 and float32, with a schedule, and vmapped over learning rates.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_parity import RTOL64, assert_trajectories_match, initial_params, trajectory

from optimizers import apply_updates, lbfgs
from optimizers.lbfgs import CURV_RTOL, MAX_LINESEARCH_STEPS, SLOPE_RTOL, zoom_linesearch


def rosenbrock(params):
    x, y = params["x"], params["y"]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_parity_without_line_search():
    kwargs = dict(learning_rate=0.3, memory_size=4, scale_init_precond=False, linesearch=None)
    params = initial_params(jnp.float64)
    ours = trajectory(lbfgs(**kwargs), params, steps=100)
    theirs = trajectory(optax.lbfgs(**kwargs), params, steps=100)
    assert_trajectories_match(ours, theirs, jnp.float64)


def test_zoom_step_satisfies_the_strong_wolfe_conditions():
    params = {"x": jnp.array(-1.2), "y": jnp.array(1.0)}
    value, grad = jax.value_and_grad(rosenbrock)(params)
    for scale in (1.0, 1e-3):  # a far too long first guess, then a far too short one
        direction = jax.tree.map(lambda g, s=scale: -s * g, grad)
        stepsize, new_value, new_grad, evaluations = jax.jit(
            lambda d: zoom_linesearch(jax.value_and_grad(rosenbrock), params, d, value, grad)
        )(direction)
        assert 0 < evaluations <= MAX_LINESEARCH_STEPS
        # Check the conditions with values computed here, not by the line search.
        moved = jax.tree.map(lambda p, d, s=stepsize: p + s * d, params, direction)
        slope_0 = sum(float(grad[k] * direction[k]) for k in params)
        moved_grad = jax.grad(rosenbrock)(moved)
        slope = sum(float(moved_grad[k] * direction[k]) for k in params)
        assert float(rosenbrock(moved)) <= float(value) + SLOPE_RTOL * float(stepsize) * slope_0
        assert abs(slope) <= CURV_RTOL * abs(slope_0)
        np.testing.assert_allclose(new_value, rosenbrock(moved), rtol=1e-14)
        np.testing.assert_allclose(new_grad["x"], moved_grad["x"], rtol=1e-14)


def test_line_search_stops_after_its_bounded_number_of_steps():
    # Unbounded below along d: no step satisfies the curvature condition, so the interval
    # search doubles the step until it runs out of evaluations.
    params, direction = {"x": jnp.array(0.0)}, {"x": jnp.array(1.0)}
    linear = lambda p: -p["x"]  # noqa: E731
    value, grad = jax.value_and_grad(linear)(params)
    stepsize, _, _, evaluations = jax.jit(
        lambda: zoom_linesearch(jax.value_and_grad(linear), params, direction, value, grad)
    )()
    assert int(evaluations) == MAX_LINESEARCH_STEPS
    # Every step decreases f enough, so the last (largest) one is kept: 1, 2, 4, ...
    assert float(stepsize) == 2.0 ** (MAX_LINESEARCH_STEPS - 1)


def test_converges_on_rosenbrock_in_a_vmapped_scan_over_learning_rates():
    start = {"x": jnp.array(-1.2), "y": jnp.array(1.0)}

    def run(learning_rate):
        opt = lbfgs(learning_rate=learning_rate)

        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(rosenbrock)(params)
            updates, state = opt.update(
                grads, state, params, value=value, grad=grads, value_fn=rosenbrock
            )
            return (apply_updates(params, updates), state), value

        (params, _), values = jax.lax.scan(step, (start, opt.init(start)), None, length=100)
        return rosenbrock(params), values

    final, values = jax.jit(jax.vmap(run))(jnp.array([0.5, 1.0]))
    # L-BFGS reaches the minimum 0 at (1, 1) to rounding within 100 steps (about 40 with
    # lr = 1, 90 with lr = 0.5, as optax.lbfgs; gradient descent needs thousands); the line
    # search never lets the loss increase.
    assert np.all(np.asarray(final) < 1e-20), final
    assert np.all(np.diff(np.asarray(values), axis=1) <= 0.0)


def test_complex_params_raise_a_type_error_naming_them():
    with pytest.raises(TypeError, match="params"):
        lbfgs().init({"z": jnp.ones(3, jnp.complex128)})


@pytest.mark.slow
def test_value_and_grad_from_state_spares_an_evaluation_per_step_as_optax():
    """optax's documented idiom: the state keeps f and grad f at the new params, so the
    loop's own evaluation is free; ours then takes optax's steps with as many evaluations."""
    start = {"x": jnp.array(-1.2), "y": jnp.array(1.0)}
    evaluations, trajectories = {}, {}
    for which, opt in (("ours", lbfgs()), ("optax", optax.lbfgs())):
        evaluations[which] = 0

        def f(params, which=which):
            def count():
                evaluations[which] += 1

            jax.debug.callback(count)
            return rosenbrock(params)

        value_and_grad = optax.value_and_grad_from_state(f)

        @jax.jit
        def step(params, state, opt=opt, f=f, value_and_grad=value_and_grad):
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
            return apply_updates(params, updates), state

        params, state, path = start, opt.init(start), []
        for _ in range(30):
            params, state = step(params, state)
            jax.effects_barrier()
            path.append(params)
            if which == "ours":  # the value kept is f at the new params (the line search
                # forms them as theta + eta d, apply_updates as theta + (eta d): an ulp apart)
                np.testing.assert_allclose(state.value, rosenbrock(params), rtol=RTOL64)
        trajectories[which] = jax.tree.map(lambda *x: jnp.stack(x), *path)
    assert_trajectories_match(trajectories["ours"], trajectories["optax"], jnp.float64)
    assert evaluations["ours"] == evaluations["optax"] > 30
