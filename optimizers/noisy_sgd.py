"""Gradient descent with annealed Gaussian gradient noise."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    not_supported,
    state_dtype,
)
from optimizers.registry import LR_GRID, OptimizerSpec, Range


class NoisySgdState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    rng_key: jax.Array  # typed PRNG key, split once per step


def as_key(key):
    """A typed PRNG key from a typed key, a raw uint32 key or an integer seed."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == jnp.uint32 and shape == (2,):
        return jax.random.wrap_key_data(key)
    return jax.random.key(key)


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: jax.Array | int | None = None,
    *,
    seed: int | None = None,
) -> Optimizer:
    r"""Gradient descent on gradients with added Gaussian noise of decaying variance.

    For step t = 1, 2, ... with gradient g_t and standard normal noise z_t:

        sigma_t = sqrt(eta / t^gamma)
        theta_t = theta_{t-1} - lr_t * (g_t + sigma_t * z_t)

    Each step splits the state's key into a new state key and a sample key, and the
    sample key into one key per leaf (in `jax.tree.leaves` order), exactly as
    `optax.noisy_sgd` does, so the same `key` draws the same noise. `key` is a PRNG
    key or an integer seed; None means seed 0 (optax warns and does the same). The
    deprecated `seed` argument is not supported.

    Reference: Neelakantan et al., "Adding Gradient Noise Improves Learning for Very
    Deep Networks", 2015.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("eta", eta)
    check_nonnegative("gamma", gamma)
    not_supported("seed", seed, None)
    key = 0 if key is None else key

    def init(params):
        del params
        return NoisySgdState(count=jnp.zeros([], jnp.int32), rng_key=as_key(key))

    def update(grads, state, params=None, **extra):
        check_state(state, NoisySgdState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        sigma = jnp.sqrt(eta / t**gamma)  # in the counter's float type, like adam's corrections
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(grads)
        keys = jax.random.split(sample_key, len(leaves))
        noise = [
            jax.random.normal(k, g.shape, state_dtype(g.dtype))
            for k, g in zip(keys, leaves, strict=True)
        ]
        direction = jax.tree.unflatten(
            treedef,
            [g + sigma.astype(z.dtype) * z for g, z in zip(leaves, noise, strict=True)],
        )
        new_state = NoisySgdState(count=t, rng_key=rng_key)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The noise's variance eta / (1 + t)^gamma: eta 0.01 to 1 and gamma 0.55 in the paper.
    "noisy_sgd": OptimizerSpec(
        noisy_sgd,
        LR_GRID,
        optax_name="noisy_sgd",
        search_space={"eta": Range(1e-3, 1.0), "gamma": Range(0.0, 1.0, "linear")},
        default_learning_rate=1e-2,  # Keras's SGD
    ),
}
__all__ = ["NoisySgdState", "noisy_sgd"]
