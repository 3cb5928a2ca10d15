"""Shared fixtures. float64 is enabled for the whole session; float32 tests ask for it."""

import itertools

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def getkey():
    """A function returning a fresh, deterministic PRNG key on each call."""
    counter = itertools.count()
    return lambda: jax.random.PRNGKey(next(counter))
