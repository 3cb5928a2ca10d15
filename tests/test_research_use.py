"""What research code relies on, for every registered optimizer.

- It drops into `optax.chain` next to optax transforms, step for step equal to the
  all-optax chain.
- bfloat16, float16, float32 and float64 params keep their dtype through `update`
  and `apply_updates`, and so does the state.
- The state is a NamedTuple that `jit`, `lax.scan` and a checkpoint round trip
  (flatten to NumPy, save, load, unflatten) carry unchanged, and a jitted `update`
  compiles once.
- Hyperparameters other than the learning rate, traced under `vmap`, give the same
  trajectories as separate optax runs.
"""

import inspect
import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optimizers import OPTIMIZERS, apply_updates, transforms

NAMES = list(OPTIMIZERS)
WITH_OPTAX = [name for name, spec in OPTIMIZERS.items() if spec.optax_name]
LEARNING_RATE = 0.05
STEPS = 30

# float64, same arithmetic on both sides: a handful of roundings of 1.1e-16 may differ
# per step (XLA fuses the two programs differently), so 1e-10 relative over 30 steps
# is loose by orders of magnitude yet far below any real difference in a rule.
RTOL64 = 1e-10


def initial_params(dtype=jnp.float64):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
    return {
        "w": jax.random.normal(k1, (3, 2), jnp.float32).astype(dtype),
        "b": jax.random.normal(k2, (2,), jnp.float32).astype(dtype),
        # Shape (1,), not (): optax.sm3 indexes an accumulator that a 0-d leaf lacks.
        "s": jax.random.normal(k3, (1,), jnp.float32).astype(dtype),
    }


def loss(params):
    """Smooth, strongly convex, coupled leaves, minimum away from zero."""
    centred = jax.tree.map(lambda p: p - 0.5, params)
    smooth = sum(jnp.sum(jnp.logaddexp(p, -p) + 0.1 * p**2) for p in jax.tree.leaves(centred))
    return smooth + 0.05 * jnp.sum(params["w"] @ params["b"]) * jnp.sum(params["s"])


def extra_args(name, params, value, grads):
    """What a rule that needs the loss gets besides the gradient, under optax's names."""
    if OPTIMIZERS[name].needs_value_fn:
        return dict(value=value, grad=grads, value_fn=loss)
    return {}


def build(name, reference=False, **overrides):
    spec = OPTIMIZERS[name]
    kwargs = {"learning_rate": LEARNING_RATE, **spec.test_hparams, **overrides}
    factory = getattr(optax, spec.optax_name) if reference else spec.factory
    return factory(**kwargs)


def trajectory(name, opt, params, steps=STEPS):
    """Params after each of `steps` updates, stacked; traceable (callers jit)."""

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, **extra_args(name, params, value, grads))
        params = apply_updates(params, updates)
        return (params, state), params

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[1]


def assert_close(ours, theirs):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert np.all(np.isfinite(np.asarray(b, np.float64))), "reference is not finite"
        np.testing.assert_allclose(a, b, rtol=RTOL64, atol=1e-300)


@pytest.mark.parametrize("name", WITH_OPTAX)
def test_inside_a_chain_equals_the_all_optax_chain(name):
    reference = optax.chain(optax.clip_by_global_norm(1.0), build(name, reference=True))
    if OPTIMIZERS[name].needs_value_fn:
        # optax.chain hands extra arguments (value, value_fn) only to optax's own
        # GradientTransformationExtraArgs; our chain hands them to every rule.
        ours = transforms.chain(optax.clip_by_global_norm(1.0), build(name))
    else:
        ours = optax.chain(optax.clip_by_global_norm(1.0), build(name))
    params = initial_params()
    both = jax.jit(lambda p: (trajectory(name, ours, p), trajectory(name, reference, p)))
    assert_close(*both(params))


def fixed_dtype_options(name):
    """Factory arguments naming a dtype whose default is a fixed dtype, not None.

    Such an option (optax.adafactor's `dtype_momentum=float32`) says on purpose that
    the state does not follow the params; the dtype test sets it to the params' dtype.
    """
    parameters = inspect.signature(OPTIMIZERS[name].factory).parameters.values()
    return [p.name for p in parameters if "dtype" in p.name and p.default is not None]


@pytest.mark.parametrize("name", NAMES)
def test_dtypes_are_kept_by_update_apply_updates_and_state(name):
    """Checked on abstract values (jax.eval_shape): dtypes are decided at trace time."""
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        for learning_rate in (LEARNING_RATE, jnp.float32(LEARNING_RATE)):
            options = {option: dtype for option in fixed_dtype_options(name)}

            def one_step(params, learning_rate=learning_rate, options=options):
                opt = build(name, learning_rate=learning_rate, **options)
                state = opt.init(params)
                value, grads = jax.value_and_grad(loss)(params)
                extra = extra_args(name, params, value, grads)
                updates, new_state = opt.update(grads, state, params, **extra)
                return state, updates, new_state, apply_updates(params, updates)

            state, updates, new_state, new_params = jax.eval_shape(one_step, initial_params(dtype))
            where = f"{name}, {jnp.dtype(dtype).name} params, learning_rate {learning_rate!r}"
            checked = [(new_params, "apply_updates")]
            if isinstance(learning_rate, float):
                # A float32 array learning rate promotes low-precision updates to
                # float32, in optax too; apply_updates casts them back.
                checked.append((updates, "updates"))
            for tree, what in checked:
                got = {leaf.dtype for leaf in jax.tree.leaves(tree)}
                assert got == {jnp.dtype(dtype)}, f"{what} dtypes {got} ({where})"
            assert jax.tree.structure(new_state) == jax.tree.structure(state), where
            for before, after in zip(
                jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True
            ):
                assert (before.dtype, before.shape) == (after.dtype, after.shape), (
                    f"state leaf {before} became {after} ({where})"
                )
            floats = {
                leaf.dtype
                for leaf in jax.tree.leaves(state)
                if jnp.issubdtype(leaf.dtype, jnp.floating)
            }
            assert floats <= {jnp.dtype(dtype)}, f"state dtypes {floats} ({where})"


def checkpoint_round_trip(state):
    """Flattens `state` to NumPy arrays, saves and loads them, and rebuilds the tree."""
    leaves, treedef = jax.tree.flatten(state)
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(leaf) for leaf in leaves])
    buffer.seek(0)
    with np.load(buffer) as saved:
        loaded = [saved[f"arr_{i}"] for i in range(len(leaves))]
    # jnp.asarray: back on the device as jax Arrays, as a checkpoint loader does.
    return jax.tree.unflatten(treedef, [jnp.asarray(leaf) for leaf in loaded])


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_jit_scan_and_a_checkpoint_without_recompiling(name):
    opt, params = build(name), initial_params()
    state = opt.init(params)
    assert isinstance(state, tuple) and hasattr(state, "_fields"), (
        f"{name} state is {type(state).__name__}, not a NamedTuple"
    )

    @jax.jit
    def jitted_step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, **extra_args(name, params, value, grads))
        return apply_updates(params, updates), state

    # Five jitted updates, the state checkpointed and restored after the second.
    p, s = params, state
    for i in range(5):
        p, s = jitted_step(p, s)
        if i == 1:
            s_saved = s
            s = checkpoint_round_trip(s)
            assert jax.tree.structure(s) == jax.tree.structure(s_saved)
            for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(s_saved), strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
    assert jitted_step._cache_size() == 1, f"{name}: update recompiled on a later call"

    # The same five steps as one lax.scan carrying the state.
    def scan_step(carry, _):
        return jitted_step.__wrapped__(*carry), None

    p_scan, s_scan = jax.jit(lambda c: jax.lax.scan(scan_step, c, None, length=5)[0])(
        (params, state)
    )
    assert type(s_scan) is type(state)
    # Same operations, compiled once as a loop body and once as a standalone program;
    # only fusion-level roundings may differ, hence 1e-12 rather than bit equality.
    for a, b in zip(jax.tree.leaves((p_scan, s_scan)), jax.tree.leaves((p, s)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)


def float_hparams(name):
    spec = OPTIMIZERS[name]
    return {
        k: v
        for k, v in spec.test_hparams.items()
        if isinstance(v, float) and not isinstance(v, bool)
    }


WITH_FLOAT_HPARAMS = [name for name in WITH_OPTAX if float_hparams(name)]


@pytest.mark.parametrize("name", WITH_FLOAT_HPARAMS)
def test_traced_hyperparameters_equal_separate_optax_runs(name):
    """Two lanes: the test hyperparameters, and each float one scaled by 0.9."""
    base = float_hparams(name)
    lanes = [base, {k: 0.9 * v for k, v in base.items()}]
    stacked = {k: jnp.array([lane[k] for lane in lanes]) for k in base}
    params = initial_params()

    def both(params):
        ours = jax.vmap(lambda hp: trajectory(name, build(name, **hp), params))(stacked)
        theirs = [trajectory(name, build(name, reference=True, **lane), params) for lane in lanes]
        return ours, theirs

    ours, theirs = jax.jit(both)(params)
    for i, reference in enumerate(theirs):
        assert_close(jax.tree.map(lambda x, i=i: x[i], ours), reference)
