"""Numerically stable losses, each averaged over its leading (example) axis."""

import jax.numpy as jnp


def mse(predictions, targets):
    """Mean squared error: mean((p - y)^2)."""
    return jnp.mean((predictions - targets) ** 2)


def binary_cross_entropy_with_logits(logits, labels):
    """Mean of -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)), stable for any z.

    Written as max(z, 0) - z y + log(1 + exp(-|z|)), which never exponentiates a
    large positive number (finite loss and gradient at z = +-1e4).
    """
    return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def binary_cross_entropy(probabilities, labels, eps=1e-12):
    """Mean of -y log p - (1 - y) log(1 - p), with p clipped to [eps, 1 - eps]."""
    p = jnp.clip(probabilities, eps, 1 - eps)
    return jnp.mean(-labels * jnp.log(p) - (1 - labels) * jnp.log1p(-p))


__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "mse"]
