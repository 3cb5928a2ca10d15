"""The textbook worked example, by hand: one SGD step on L = 1/2 (y - (w x + b))^2."""

import jax
import jax.numpy as jnp
import numpy as np

from optimizers import apply_updates, sgd
from problems.losses import mse


def loss(params, x, y):
    return 0.5 * (y - (params["w"] * x + params["b"])) ** 2


def test_loss_gradient_and_one_sgd_step():
    params = {"w": jnp.array(0.5), "b": jnp.array(0.5)}
    x, y = 2.0, 3.0
    assert np.isclose(loss(params, x, y), 1.125)
    grads = jax.grad(loss)(params, x, y)
    assert np.isclose(grads["w"], -3.0) and np.isclose(grads["b"], -1.5)
    opt = sgd(learning_rate=0.01)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = apply_updates(params, updates)
    assert np.isclose(new["w"], 0.53) and np.isclose(new["b"], 0.515)


def test_mse_matches_the_half_squared_error():
    prediction, target = jnp.array([1.5]), jnp.array([3.0])
    assert np.isclose(0.5 * mse(prediction, target), 1.125)
