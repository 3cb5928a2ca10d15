"""Each registered rule's search space: valid ranges around the factory's defaults, a
default learning rate inside, and every dimension swept as a traced scalar."""

import inspect
import math
from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optimizers import OPTIMIZERS, Choice, Range, apply_updates

NAMES = list(OPTIMIZERS)


def numeric_defaults(factory) -> dict[str, float]:
    """The factory's arguments whose default is a number (booleans left out)."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(factory).parameters.items()
        if isinstance(parameter.default, Real) and not isinstance(parameter.default, bool)
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_dimension_is_an_argument_with_its_defaults_inside(name):
    spec = OPTIMIZERS[name]
    space = spec.space()
    # Binds every dimension (a factory taking **hparams, as polyak_sgd's, binds any; its
    # keys are checked by the tracing test, which calls it).
    inspect.signature(spec.factory).bind_partial(**dict.fromkeys(space, 0.0))
    fixed = {k: v for k, v in spec.hparams.items() if isinstance(v, float)}
    for key, dimension in space.items():
        assert isinstance(dimension, Range | Choice), key
        for source, values in (("default", numeric_defaults(spec.factory)), ("hparams", fixed)):
            if key in values:
                assert dimension.contains(values[key]), f"{name}: {source} {key}={values[key]}"


@pytest.mark.parametrize("name", NAMES)
def test_the_default_learning_rate_is_inside_the_space(name):
    spec = OPTIMIZERS[name]
    learning_rate = spec.defaults()["learning_rate"]
    assert learning_rate > 0
    assert spec.space()["learning_rate"].contains(learning_rate)


def test_a_rule_without_a_default_learning_rate_is_an_error():
    spec = OPTIMIZERS["sgd"]
    bare = type(spec)(spec.factory, spec.learning_rates)
    with pytest.raises(ValueError, match="sgd"):
        bare.defaults()


@pytest.mark.parametrize("name", NAMES)
def test_the_rule_traces_with_its_whole_space_swept(name):
    spec = OPTIMIZERS[name]
    space = spec.space()
    fixed = {k: v for k, v in spec.hparams.items() if k not in space}
    params = {"w": jnp.ones((4, 3), jnp.float32), "b": jnp.ones(3, jnp.float32)}
    target = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)

    def loss_fn(params):
        squares = jax.tree.map(lambda p, t: jnp.sum((p - t) ** 2), params, target)
        return sum(jax.tree.leaves(squares))

    def lane(swept):
        opt = spec.factory(**swept, **fixed)
        state, current = opt.init(params), params
        for _ in range(2):
            value, grads = jax.value_and_grad(loss_fn)(current)
            extras = spec.update_extras(value, grads, loss_fn)
            updates, state = opt.update(grads, state, current, **extras)
            current = apply_updates(current, updates)
        return current

    lanes = {k: jnp.full(2, dimension.value(0.5), jnp.float32) for k, dimension in space.items()}
    out = jax.eval_shape(jax.vmap(lane), lanes)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), out) == {
        "w": ((2, 4, 3), jnp.float32),
        "b": ((2, 3), jnp.float32),
    }


@pytest.mark.parametrize("scale", ["log", "linear", "one_minus_log"])
def test_a_range_maps_the_unit_interval_onto_itself_monotonically(scale):
    dimension = Range(0.5, 0.999, scale)
    points = [dimension.value(u) for u in np.linspace(0, 1, 11)]
    assert math.isclose(points[0], 0.5) and math.isclose(points[-1], 0.999)
    assert np.all(np.diff(points) > 0)
    assert all(dimension.contains(x) for x in points)
    assert not dimension.contains(0.4) and not dimension.contains(0.9995)


def test_the_middles_of_the_scales():
    assert math.isclose(Range(1e-4, 1.0).value(0.5), 1e-2)
    assert math.isclose(Range(2.0, 4.0, "linear").value(0.5), 3.0)
    # 1 - x is log-uniform: the middle of 1 - x in [1e-3, 1e-1] is 1e-2.
    assert math.isclose(Range(0.9, 0.999, "one_minus_log").value(0.5), 0.99)


def test_a_choice_picks_by_fraction():
    choice = Choice((0.0, 1.0, 2.0))
    picks = [choice.value(u) for u in (0.0, 0.33, 0.34, 0.5, 0.99, 1.0)]
    assert picks == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert choice.contains(1.0) and not choice.contains(0.5)


@pytest.mark.parametrize(
    "arguments, field",
    [
        ((1.0, 1.0), "low"),
        ((2.0, 1.0, "linear"), "low"),
        ((0.0, 1.0, "log"), "low"),
        ((0.5, 1.0, "one_minus_log"), "high"),
        ((0.1, 1.0, "cubic"), "scale"),
    ],
)
def test_bad_ranges_are_errors(arguments, field):
    with pytest.raises(ValueError, match=field):
        Range(*arguments)


def test_an_empty_choice_is_an_error():
    with pytest.raises(ValueError, match="values"):
        Choice(())
