"""The losses: worked values, parity with optax's elementwise losses, numerical stability."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from problems import losses


def test_binary_cross_entropy_worked_example():
    # -(2 log 0.9 + 2 log 0.8) / 4 = 0.1642520...
    labels = jnp.array([0.0, 1.0, 0.0, 1.0])
    probabilities = jnp.array([0.1, 0.9, 0.2, 0.8])
    assert round(float(losses.binary_cross_entropy(probabilities, labels)), 6) == 0.164252


def _random(getkey, shape):
    return jax.random.normal(getkey(), shape, jnp.float64)


def test_regression_losses_match_optax_and_numpy(getkey):
    p, y = 3.0 * _random(getkey, (7, 3)), 3.0 * _random(getkey, (7, 3))
    # Same formula, same float64 operations up to summation order: 1e-12 relative.
    np.testing.assert_allclose(losses.mse(p, y), jnp.mean(optax.squared_error(p, y)), rtol=1e-12)
    np.testing.assert_allclose(losses.mae(p, y), np.mean(np.abs(np.subtract(p, y))), rtol=1e-12)
    for delta in (0.5, 1.0, 2.0):
        expected = jnp.mean(optax.huber_loss(p, y, delta=delta))
        np.testing.assert_allclose(losses.huber(p, y, delta), expected, rtol=1e-12)


def test_huber_regions():
    # |e| = 0.5 <= delta: 0.5^2 / 2 = 0.125; |e| = 3 > delta = 1: 1 * (3 - 1/2) = 2.5.
    assert float(losses.huber(jnp.array([0.5]), jnp.array([0.0]))) == 0.125
    assert float(losses.huber(jnp.array([-3.0]), jnp.array([0.0]))) == 2.5


def test_classification_losses_match_optax(getkey):
    logits = 4.0 * _random(getkey, (6, 5))
    classes = jax.random.randint(getkey(), (6,), 0, 5)
    one_hot = jax.nn.one_hot(classes, 5, dtype=jnp.float64)
    binary = jax.random.bernoulli(getkey(), 0.5, (6, 5)).astype(jnp.float64)
    pairs = [
        (
            losses.softmax_cross_entropy(logits, one_hot),
            optax.softmax_cross_entropy(logits, one_hot),
        ),
        (
            losses.softmax_cross_entropy_with_integer_labels(logits, classes),
            optax.softmax_cross_entropy_with_integer_labels(logits, classes),
        ),
        (
            losses.binary_cross_entropy_with_logits(logits, binary),
            optax.sigmoid_binary_cross_entropy(logits, binary),
        ),
        (
            losses.binary_cross_entropy(jax.nn.sigmoid(logits), binary),
            optax.sigmoid_binary_cross_entropy(logits, binary),
        ),
    ]
    for ours, theirs in pairs:
        # Mathematically equal; different but stable float64 formulas: 1e-10 relative.
        np.testing.assert_allclose(ours, jnp.mean(theirs), rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_logit_losses_are_finite_and_exact_at_extreme_logits(dtype):
    logits = jnp.array([[1e4, -1e4], [-1e4, 1e4]], dtype)
    classes = jnp.array([1, 1])
    one_hot = jax.nn.one_hot(classes, 2, dtype=dtype)
    binary = jnp.array([[0.0, 1.0], [1.0, 0.0]], dtype)
    softmax_losses = [
        lambda z: losses.softmax_cross_entropy(z, one_hot),
        lambda z: losses.softmax_cross_entropy_with_integer_labels(z, classes),
    ]
    for loss in softmax_losses:
        value, grad = jax.value_and_grad(loss)(logits)
        assert value == 1e4  # row 0 is wrong by a margin of 2e4, row 1 right: mean 1e4, exactly
        assert bool(jnp.all(jnp.isfinite(grad)))
    value, grad = jax.value_and_grad(losses.binary_cross_entropy_with_logits)(logits, binary)
    assert value == 1e4  # each entry: a 1e4 margin the wrong way, exactly
    # d/dz = (sigmoid(z) - y) / 4 = -+1/4 on every entry
    np.testing.assert_array_equal(grad, jnp.array([[0.25, -0.25], [-0.25, 0.25]], dtype))


def test_probability_cross_entropy_is_finite_at_zero_and_one():
    value, grad = jax.value_and_grad(losses.binary_cross_entropy)(
        jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0])
    )
    # Clipping at eps = 1e-12 bounds each term by -log(1e-12) = 27.63.
    np.testing.assert_allclose(value, -np.log(1e-12), rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(grad)))
