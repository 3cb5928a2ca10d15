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

import functools
import inspect
import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import test_golden as golden
from parity_settings import settings
from test_golden import loss

from optimizers import OPTIMIZERS, apply_updates, transforms

# Many cases that together take minutes: make test-slow runs them, make test does not.
pytestmark = pytest.mark.slow

NAMES = list(OPTIMIZERS)
WITH_OPTAX = [name for name, spec in OPTIMIZERS.items() if spec.optax_name]
LEARNING_RATE = 0.05
STEPS = 30

# float64, same arithmetic on both sides: a handful of roundings of 1.1e-16 may differ
# per step (XLA fuses the two programs differently), so 1e-10 relative over 30 steps
# is loose by orders of magnitude yet far below any real difference in a rule.
RTOL64 = 1e-10


def initial_params(dtype=jnp.float64):
    """A matrix and a vector: the leaf ranks rules treat differently (factored, per-layer)."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    return {
        "w": jax.random.normal(k1, (3, 2), jnp.float32).astype(dtype),
        "b": jax.random.normal(k2, (2,), jnp.float32).astype(dtype),
    }


def extra_args(name, params, value, grads):
    """What a rule that needs the loss gets besides the gradient, under optax's names."""
    return OPTIMIZERS[name].update_extras(value, grads, loss)


def build(name, reference=False, learning_rate=LEARNING_RATE, **overrides):
    """Our rule, or its optax alias (which may call the learning rate otherwise)."""
    spec, test = OPTIMIZERS[name], settings(name)
    kwargs = {**test.hparams, **overrides}
    if reference:
        return getattr(optax, spec.optax_name)(**{test.learning_rate_arg: learning_rate}, **kwargs)
    return spec.factory(learning_rate=learning_rate, **kwargs)


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


def fixed_dtype_options(name):
    """Factory arguments naming a dtype whose default is a fixed dtype, not None.

    Such an option (optax.adafactor's `dtype_momentum=float32`) says on purpose that
    the state does not follow the params; the dtype test sets it to the params' dtype.
    """
    parameters = inspect.signature(OPTIMIZERS[name].factory).parameters.values()
    return [p.name for p in parameters if "dtype" in p.name and p.default is not None]


# Rules whose docstring says they keep part of their state in float32 at least: inverse
# roots of half-precision statistics would be noise.
STATE_IN_FLOAT32_AT_LEAST = {"distributed_shampoo"}


@pytest.mark.parametrize("name", NAMES)
def test_dtypes_are_kept_by_update_apply_updates_and_state(name):
    """Checked on abstract values (jax.eval_shape): dtypes are decided at trace time."""
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        # A float32 array learning rate, as the benchmark's vmapped sweeps pass it,
        # matters where it meets lower-precision params.
        learning_rates = [LEARNING_RATE]
        if jnp.finfo(dtype).bits < 32:
            learning_rates.append(jnp.float32(LEARNING_RATE))
        for learning_rate in learning_rates:
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
            allowed = {jnp.dtype(dtype)}
            if name in STATE_IN_FLOAT32_AT_LEAST:
                allowed.add(jnp.promote_types(dtype, jnp.float32))
            assert floats <= allowed, f"state dtypes {floats} ({where})"


@pytest.mark.parametrize("name", NAMES)
def test_params_and_state_from_init_can_be_donated(name):
    """jit(step, donate_argnums=(0, 1)) takes init's state as it is, with no copy first.

    XLA refuses to donate one buffer twice, so no two state leaves may share one.
    """
    opt = build(name)

    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, **extra_args(name, params, value, grads))
        return apply_updates(params, updates), state

    donating = jax.jit(step, donate_argnums=(0, 1))
    params = initial_params()
    expected = jax.jit(step)(params, opt.init(params))
    got = donating(jax.tree.map(jnp.copy, params), opt.init(params))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        if is_prng_key(a):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


GRADIENT_ONLY = [
    n for n, spec in OPTIMIZERS.items() if not (spec.needs_value_fn or spec.needs_loss)
]
# Rules whose state for integer params still differs from that for float params, and why.
FLOAT32_NORMS = "norms of int32 leaves come out in float32 (jnp.linalg.norm's promotion)"
NOT_YET_INTEGER = "not yet checked with integer params"
INTEGER_PARAMS_DIFFER = {
    "lars": FLOAT32_NORMS,
    "novograd": FLOAT32_NORMS,
    "adafactor": "its decay and statistics of int32 leaves are taken in float32",
    **dict.fromkeys(
        [
            "cocob",
            "dadapt_adamw",
            "dog",
            "dowg",
            "galore",
            "madgrad",
            "mechanize",
            "prodigy",
            "schedule_free_sgd",
            "schedule_free_adamw",
        ],
        NOT_YET_INTEGER,
    ),
}
WITH_INTEGER_PARAMS = [
    pytest.param(name, marks=pytest.mark.skip(reason=INTEGER_PARAMS_DIFFER[name]))
    if name in INTEGER_PARAMS_DIFFER
    else name
    for name in GRADIENT_ONLY
]


@pytest.mark.parametrize("name", WITH_INTEGER_PARAMS)
def test_integer_params_keep_float_state_that_does_not_truncate(name):
    """int32 params get the state of the same params as floats (JAX's default float type,
    as optax promotes them), not moments truncated to integers, step after step."""
    opt = build(name)
    ints = {"w": jnp.array([[1, -2, 3], [0, 2, -1]], jnp.int32), "b": jnp.array([4, -1], jnp.int32)}
    floats = jax.tree.map(lambda p: p.astype(jnp.result_type(p, float)), ints)
    update = jax.jit(opt.update)
    int_state, float_state = opt.init(ints), opt.init(floats)
    for t in range(5):
        grads = jax.tree.map(lambda p, t=t: (p * (t + 2)) % 5 - 2, ints)
        int_state = update(grads, int_state, ints)[1]
        float_grads = jax.tree.map(lambda g, f: g.astype(f.dtype), grads, floats)
        float_state = update(float_grads, float_state, floats)[1]
        for a, b in zip(jax.tree.leaves(int_state), jax.tree.leaves(float_state), strict=True):
            if is_prng_key(a):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            assert a.dtype == b.dtype, f"{name}: {a.dtype} where float params give {b.dtype}"
            # The same float64 arithmetic, but for where XLA contracts multiply-adds.
            np.testing.assert_allclose(a, b, rtol=RTOL64, atol=1e-300, err_msg=name)


def is_prng_key(leaf):
    return jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def checkpoint_round_trip(state):
    """Flattens `state` to NumPy arrays, saves and loads them, and rebuilds the tree.

    Typed PRNG keys are saved as their raw data and rewrapped, as checkpointers do.
    """
    leaves, treedef = jax.tree.flatten(state)
    raw = [jax.random.key_data(x) if is_prng_key(x) else x for x in leaves]
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(leaf) for leaf in raw])
    buffer.seek(0)
    with np.load(buffer) as saved:
        loaded = [saved[f"arr_{i}"] for i in range(len(leaves))]
    # jnp.asarray: back on the device as jax Arrays, as a checkpoint loader does.
    restored = [
        jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if is_prng_key(x)
        else jnp.asarray(data)
        for x, data in zip(leaves, loaded, strict=True)
    ]
    return jax.tree.unflatten(treedef, restored)


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_jit_scan_and_a_checkpoint_without_recompiling(name):
    # The golden test's jitted step (one compile serves both files): update and
    # apply_updates on the golden problem, from its float64 start.
    opt, jitted_step = golden.jitted_step(name)
    params = golden.initial_params()
    state = opt.init(params)
    assert isinstance(state, tuple) and hasattr(state, "_fields"), (
        f"{name} state is {type(state).__name__}, not a NamedTuple"
    )

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
                if is_prng_key(a):
                    a, b = jax.random.key_data(a), jax.random.key_data(b)
                np.testing.assert_array_equal(a, b)
    assert jitted_step._cache_size() == 1, f"{name}: update recompiled on a later call"

    # lax.scan takes the state as its carry and gives back the same types (checked
    # abstractly: the values are those of the jitted steps above).
    def scan_step(carry, _):
        return jitted_step.__wrapped__(*carry), None

    carry = (params, state)
    final = jax.eval_shape(lambda c: jax.lax.scan(scan_step, c, None, length=5)[0], carry)
    assert jax.tree.structure(final) == jax.tree.structure(carry)
    assert type(final[1]) is type(state)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(carry), strict=True):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)


def traced_lanes(name):
    """Two settings of the rule's float test hyperparameters, stacked for vmap.

    Lane 0 holds the rule's test values (tests/parity_settings.py), lane 1 optax's
    defaults for the same arguments (0.9 times the test value where the default is not
    a number).
    """
    spec = OPTIMIZERS[name]
    defaults = inspect.signature(getattr(optax, spec.optax_name)).parameters
    test_values = {
        k: v for k, v in settings(name).hparams.items() if isinstance(v, float) and k in defaults
    }
    other = {}
    for k, v in test_values.items():
        default = defaults[k].default
        other[k] = default if isinstance(default, float) and default != v else 0.9 * v
    lanes = [test_values, other]
    return lanes, {k: jnp.array([lane[k] for lane in lanes]) for k in test_values}


@functools.cache
def chain_runs(name):
    """Our rule after optax.clip_by_global_norm in optax.chain, its float hyperparameters
    traced under vmap over two lanes, and for each lane the all-optax chain.

    One compiled program serves the two tests below.
    """
    lanes, stacked = traced_lanes(name)
    ours_in = optax.chain if not OPTIMIZERS[name].needs_value_fn else transforms.chain
    # optax.chain hands extra arguments (value, value_fn) only to optax's own
    # GradientTransformationExtraArgs; our chain hands them to every rule, so rules that
    # need the loss go in ours, next to the same optax transform.

    def run(params):
        if not stacked:  # no float hyperparameter: one lane, nothing to vmap over
            ours_in_chain = ours_in(optax.clip_by_global_norm(1.0), build(name))
            ours = jax.tree.map(lambda x: x[None], trajectory(name, ours_in_chain, params))
        else:
            ours = jax.vmap(
                lambda hp: trajectory(
                    name, ours_in(optax.clip_by_global_norm(1.0), build(name, **hp)), params
                )
            )(stacked)
        theirs = [
            trajectory(
                name,
                optax.chain(optax.clip_by_global_norm(1.0), build(name, reference=True, **lane)),
                params,
            )
            for lane in lanes
        ]
        return ours, theirs

    # LLVM's backend optimisation level 0 compiles these loops about a quarter faster;
    # it leaves float semantics alone (no fast-math), and both sides share the program.
    compiled = jax.jit(run, compiler_options={"xla_backend_optimization_level": 0})
    ours, theirs = compiled(initial_params())
    return [jax.tree.map(lambda x, i=i: x[i], ours) for i in range(len(lanes))], theirs, lanes


@pytest.mark.parametrize("name", WITH_OPTAX)
def test_inside_optax_chain_equals_the_all_optax_chain(name):
    ours, theirs, lanes = chain_runs(name)
    assert_close(ours[0], theirs[0])


WITH_FLOAT_HPARAMS = [name for name in WITH_OPTAX if traced_lanes(name)[1]]


@pytest.mark.parametrize("name", WITH_FLOAT_HPARAMS)
def test_traced_hyperparameters_equal_separate_optax_runs(name):
    ours, theirs, lanes = chain_runs(name)
    for lane, a, b in zip(lanes, ours, theirs, strict=True):
        try:
            assert_close(a, b)
        except AssertionError as error:
            raise AssertionError(f"{name} with traced hyperparameters {lane}: {error}") from None
