"""The textbook heavy-ball method equals sgd with momentum only at a constant learning rate."""

import jax
import jax.numpy as jnp
import numpy as np

from optimizers import apply_updates, heavy_ball, sgd

STEPS = 200


def loss(params):
    """An ill-conditioned quadratic plus a quartic term, so momentum matters."""
    x = params["x"]
    return 0.5 * jnp.sum(jnp.array([1.0, 10.0, 100.0]) * x**2) + 0.01 * jnp.sum(x**4)


def trajectory(opt):
    params = {"x": jnp.array([1.0, -2.0, 0.5], jnp.float64)}

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = apply_updates(params, updates)
        return (params, state), params["x"]

    return np.asarray(jax.lax.scan(step, (params, opt.init(params)), None, length=STEPS)[1])


def test_equals_sgd_with_momentum_at_a_constant_learning_rate():
    ours = trajectory(heavy_ball(0.005, momentum=0.8))
    theirs = trajectory(sgd(0.005, momentum=0.8))
    # v_t = lr * m_t exactly in real arithmetic; the two round differently per step.
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


def test_differs_from_sgd_with_momentum_under_a_schedule():
    def schedule(count):  # the learning rate drops fivefold at step 50
        return jnp.where(count < 50, 0.005, 0.001)

    ours = trajectory(heavy_ball(schedule, momentum=0.8))
    theirs = trajectory(sgd(schedule, momentum=0.8))
    # heavy ball: x_t - x_{t-1} = -(mu * v_{t-1} + lr_t g_t); sgd rescales the whole
    # buffer by lr_t instead. After the drop the two must have parted visibly.
    assert np.max(np.abs(ours - theirs)) > 1e-3
    # ... and it is the textbook form: each step is mu times the last one minus lr_t g_t.
    points = np.concatenate([[[1.0, -2.0, 0.5]], ours])
    steps = np.diff(points, axis=0)
    grads = np.array([jax.grad(loss)({"x": x})["x"] for x in points[:-1]])
    lrs = np.where(np.arange(STEPS) < 50, 0.005, 0.001)
    expected = 0.8 * np.concatenate([np.zeros((1, 3)), steps[:-1]]) - lrs[:, None] * grads
    np.testing.assert_allclose(steps, expected, rtol=1e-9, atol=1e-15)
