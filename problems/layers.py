"""Building blocks the model families share: initialisation, normalization, dense layers,
per-layer gradient norms and size presets.

Every function is pure. Parameters of a model are a list of layers, input layer first,
each a dict of arrays, so that `layer_norms` gives one gradient norm per layer as the
MLPs' `layer_grad_norms` does. Activations run in the dtype the parameters come in
(bfloat16 under mixed precision); statistics that lose too much there (normalization
moments, softmax, the loss) are taken in float32 at least (`at_least_float32`).
"""

import math

import jax
import jax.numpy as jnp

from problems import draws

SCALES = ("tiny", "cpu", "gpu")


def check_scale(scale: str) -> None:
    """ValueError naming `scale` unless it is one of SCALES."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")


def at_least_float32(x: jax.Array) -> jax.Array:
    """x in float32, or in its own dtype where that is wider (float64 stays float64)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def scaled_normal(key: jax.Array, shapes: list[tuple[int, ...]], fan_ins: list[int], gain=1.0):
    """One machine-independent normal draw (`draws.normal`) cut into arrays of `shapes`,
    each scaled to variance gain / fan_in (LeCun, or He with gain 2)."""
    sizes = [math.prod(shape) for shape in shapes]
    noise = draws.normal(key, (sum(sizes),))
    out, start = [], 0
    for shape, size, fan_in in zip(shapes, sizes, fan_ins, strict=True):
        out.append(math.sqrt(gain / fan_in) * noise[start : start + size].reshape(shape))
        start += size
    return out


def layer_norm(x, scale, shift, axes=(-1,), eps=1e-5):
    """(x - mean) / sqrt(var + eps) * scale + shift, moments over `axes` of each example.

    Ba, Kiros and Hinton, "Layer normalization", 2016. The moments are taken in float32
    at least; the result is in x's dtype.
    """
    wide = at_least_float32(x)
    mean = jnp.mean(wide, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(wide - mean), axis=axes, keepdims=True)
    normed = ((wide - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)
    return normed * scale + shift


def dense(x, layer):
    """x W + b."""
    return x @ layer["w"] + layer["b"]


def layer_norms(grads) -> jax.Array:
    """The gradient's norm per layer, input layer first: sqrt of the sum of squares of every
    array of the layer."""
    return jnp.stack(
        [
            jnp.sqrt(sum(jnp.sum(jnp.square(at_least_float32(g))) for g in jax.tree.leaves(layer)))
            for layer in grads
        ]
    )


def parameter_count(init, key=None) -> int:
    """The number of scalars `init` returns, found without computing them."""
    shapes = jax.eval_shape(init, jax.random.PRNGKey(0) if key is None else key)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
