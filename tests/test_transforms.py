"""Gradient transforms and `chain`: per-step parity with optax, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optimizers import adam, apply_updates, sgd, transforms
from optimizers import schedules as our_schedules

STEPS = 60

# Same float64 arithmetic in the same order on both sides: only a few roundings of
# 1.1e-16 can differ per step, so 1e-11 relative leaves a wide margin over 60 steps.
RTOL = 1e-11


def initial_params():
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    return {"w": jax.random.normal(k1, (3, 2)), "b": jax.random.normal(k2, (2,)) * 3}


def loss(params):
    """Gradients of norm well above 1 at the start, so clipping is active, then below it."""
    return jnp.sum((params["w"] @ params["b"] - 1.0) ** 2) + 2.0 * jnp.sum(params["b"] ** 4)


def trajectory(opt, with_value=False):
    """Parameters after each of STEPS updates of `opt` on `loss`, stacked."""

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        extra = {"value": value} if with_value else {}
        updates, state = opt.update(grads, state, params, **extra)
        params = apply_updates(params, updates)
        return (params, state), params

    params = initial_params()
    return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=STEPS)[1])(params)


def assert_same(ours, theirs):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert np.all(np.isfinite(b))
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-300)


def random_updates(seed, scale):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {"w": scale * jax.random.normal(k1, (3, 2)), "b": scale * jax.random.normal(k2, (2,))}


@pytest.mark.parametrize("scale", [0.01, 0.3, 5.0])
@pytest.mark.parametrize(
    ("name", "args"),
    [("clip_by_global_norm", (1.0,)), ("clip", (0.4,)), ("add_decayed_weights", (0.05,))],
)
def test_single_transform_equals_optax(name, args, scale):
    ours, theirs = getattr(transforms, name)(*args), getattr(optax, name)(*args)
    params = random_updates(99, 1.0)
    updates = random_updates(3, scale)
    got, _ = ours.update(updates, ours.init(params), params)
    want, _ = theirs.update(updates, theirs.init(params), params)
    assert_same(got, want)
    # The transform must change something at some scale: check it does what it says.
    if name == "clip":
        assert all(float(jnp.max(jnp.abs(u))) <= 0.4 for u in jax.tree.leaves(got))
    if name == "clip_by_global_norm":
        assert float(transforms.global_norm(got)) <= 1.0 + 1e-12


def test_clip_by_global_norm_rescales_exactly():
    """A worked example: the update (3, 4) has norm 5 and becomes (0.6, 0.8) for max_norm 1."""
    clipped, _ = transforms.clip_by_global_norm(1.0).update({"a": jnp.array([3.0, 4.0])}, ())
    np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-15)


def test_chain_of_our_transforms_equals_optax_chain():
    ours = transforms.chain(
        transforms.clip_by_global_norm(1.0),
        transforms.add_decayed_weights(0.01),
        transforms.clip(0.5),
        sgd(learning_rate=0.05, momentum=0.9),
    )
    theirs = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.add_decayed_weights(0.01),
        optax.clip(0.5),
        optax.sgd(learning_rate=0.05, momentum=0.9),
    )
    assert_same(trajectory(ours), trajectory(theirs))


def test_chain_accepts_optax_transforms_and_our_rules_alike():
    ours = transforms.chain(optax.clip_by_global_norm(1.0), adam(learning_rate=0.03))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate=0.03))
    assert_same(trajectory(ours), trajectory(theirs))


def test_chain_passes_extra_arguments_only_to_those_that_take_them():
    """optax.polyak_sgd needs `value`; optax.clip does not accept it."""
    ours = transforms.chain(optax.clip(0.5), optax.polyak_sgd(max_learning_rate=0.1))
    theirs = optax.chain(optax.clip(0.5), optax.polyak_sgd(max_learning_rate=0.1))
    assert_same(trajectory(ours, with_value=True), trajectory(theirs, with_value=True))


def test_decayed_weights_with_a_schedule_and_a_mask():
    decay = our_schedules.linear_schedule(0.1, 0.0, transition_steps=40)
    reference_decay = optax.linear_schedule(0.1, 0.0, transition_steps=40)
    mask = {"w": True, "b": False}
    ours = transforms.chain(transforms.add_decayed_weights(decay, mask), sgd(0.05))
    theirs = optax.chain(optax.add_decayed_weights(reference_decay, mask), optax.sgd(0.05))
    assert_same(trajectory(ours), trajectory(theirs))
    callable_mask = transforms.chain(
        transforms.add_decayed_weights(decay, lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        sgd(0.05),
    )
    assert_same(trajectory(callable_mask), trajectory(theirs))


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="max_norm"):
        transforms.clip_by_global_norm(-1.0)
    with pytest.raises(ValueError, match="max_delta"):
        transforms.clip(-0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        transforms.add_decayed_weights(-1e-4)
    decay = transforms.add_decayed_weights(1e-4)
    with pytest.raises(ValueError, match="params"):
        decay.update({"a": jnp.ones(2)}, decay.init(None))
    with pytest.raises(ValueError, match="same tree structure"):
        decay.update({"a": jnp.ones(2)}, decay.init(None), {"b": jnp.ones(2)})
    chained = transforms.chain(transforms.clip(1.0), sgd(0.1))
    with pytest.raises(ValueError, match="chain"):
        chained.update({"a": jnp.ones(2)}, (), {"a": jnp.ones(2)})
