"""Numerically stable losses, each averaged over every element (examples first).

Each loss is the mean of the optax elementwise loss of the same meaning where optax has
one: `mse` of `optax.squared_error`, `huber` of `optax.huber_loss`,
`binary_cross_entropy_with_logits` of `optax.sigmoid_binary_cross_entropy`,
`softmax_cross_entropy` of `optax.softmax_cross_entropy` and
`softmax_cross_entropy_with_integer_labels` of its optax namesake. optax has no
mean absolute error and no cross-entropy from probabilities.
"""

import jax
import jax.numpy as jnp


def mse(predictions, targets):
    """Mean squared error: mean((p - y)^2)."""
    return jnp.mean((predictions - targets) ** 2)


def mae(predictions, targets):
    """Mean absolute error: mean(|p - y|)."""
    return jnp.mean(jnp.abs(predictions - targets))


def huber(predictions, targets, delta=1.0):
    """Mean Huber loss: 1/2 e^2 where |e| <= delta, delta (|e| - delta / 2) beyond.

    Written as 1/2 min(|e|, delta)^2 + delta (|e| - min(|e|, delta)) like optax, so
    the gradient is e clipped to [-delta, delta] without double counting at the seam.
    """
    abs_errors = jnp.abs(predictions - targets)
    quadratic = jnp.minimum(abs_errors, delta)
    return jnp.mean(0.5 * quadratic**2 + delta * (abs_errors - quadratic))


def binary_cross_entropy_with_logits(logits, labels):
    """Mean of -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)), stable for any z.

    Written as max(z, 0) - z y + log(1 + exp(-|z|)), which never exponentiates a
    large positive number (finite loss and gradient at z = +-1e4).
    """
    return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def binary_cross_entropy(probabilities, labels, eps=1e-12):
    """Mean of -y log p - (1 - y) log(1 - p), with p clipped to [eps, 1 - eps].

    The clip keeps the loss finite at p = 0 or 1; log1p(-p) keeps log(1 - p)
    accurate for small p. Prefer the logits form where the model gives logits.
    """
    p = jnp.clip(probabilities, eps, 1 - eps)
    return jnp.mean(-labels * jnp.log(p) - (1 - labels) * jnp.log1p(-p))


def softmax_cross_entropy(logits, labels):
    """Mean over examples of -sum_k y_k log softmax(z)_k; labels one-hot (or any distribution).

    log softmax(z) = z - max(z) - log sum exp(z - max(z)) never overflows (finite
    loss and gradient at logits of +-1e4).
    """
    return jnp.mean(-jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def softmax_cross_entropy_with_integer_labels(logits, labels):
    """Mean over examples of -log softmax(z)_y, labels integer class indices (last axis classes)."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1))


__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "huber",
    "mae",
    "mse",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
