"""Per-step parity of every registered optimizer with its optax alias.

Both run the same jitted `lax.scan` on the same loss from the same start; the
parameters after every one of STEPS steps are compared.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from parity_settings import compiled, settings

from optimizers import OPTIMIZERS, apply_updates

STEPS = 300
WITH_OPTAX = [name for name, spec in OPTIMIZERS.items() if spec.optax_name]

# float64: the two implementations perform the same arithmetic, so only a handful of
# roundings of 1.1e-16 can differ per step; 1e-10 relative leaves room for 300 steps.
RTOL64 = 1e-10
# float32: eps = 1.2e-7. Every rule here repeats optax's order of operations, and on
# jax/jaxlib 0.10.2 with optax 0.2.8 the two trajectories are bitwise equal. 2e-6 on
# parameters of order one (about 16 ulps) leaves room for an XLA release that fuses
# the two programs differently, and no more: a changed rule moves them far further
# (the float64 comparison above pins the rule itself to 1e-10).
ATOL32 = 2e-6
# optax.sm3 indexes a per-axis accumulator list that is empty for a scalar leaf, so its
# reference cannot run on one: these rules are compared on the tree without the scalar.
OPTAX_REJECTS_SCALAR_LEAVES = {"sm3"}
# optax aliases whose learning_rate cannot be a schedule: sm3 negates it at construction,
# rprop's is the initial step size, optimistic_adam raises ValueError for one.
OPTAX_TAKES_NO_SCHEDULE = {"sm3", "rprop", "optimistic_adam"}
# Rules compared with optax on real params only, and why.
REAL_ONLY = {
    "rprop": "optax.rprop rejects complex params (jnp.clip of a complex step)",
    "sm3": "optax.sm3 rejects complex params",
    "adadelta": "optax.adadelta averages g^2 and dx^2 where ours averages |g|^2 and |dx|^2",
    "lbfgs": "lbfgs takes real params only (it raises TypeError for complex ones)",
}


def initial_params(dtype, name=None):
    """A pytree of mixed shapes: a matrix, a vector and a scalar (unless optax rejects one).

    Complex params get imaginary parts of the same size as their real parts.
    """
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(42), 4)
    shapes = {"w": (3, 4), "b": (4,), "s": ()}
    params = {
        k: jax.random.normal(key, shape, jnp.float32).astype(dtype)
        for key, (k, shape) in zip((k1, k2, k3), shapes.items(), strict=True)
    }
    if jnp.iscomplexobj(jnp.zeros((), dtype)):
        imaginary = jax.random.split(k4, 3)
        params = {
            k: p + 1j * jax.random.normal(key, p.shape, jnp.float32).astype(dtype)
            for key, (k, p) in zip(imaginary, params.items(), strict=True)
        }
    if name in OPTAX_REJECTS_SCALAR_LEAVES:
        del params["s"]
    return params


def loss(params):
    """Strongly convex, not quadratic, with coupled leaves and optimum away from 0."""
    centred = jax.tree.map(lambda p: p - 0.5, params)
    smooth = sum(jnp.sum(jnp.logaddexp(p, -p) + 0.1 * p**2) for p in jax.tree.leaves(centred))
    coupling = jnp.sum(params["w"] @ params["b"]) * params.get("s", 1.0) * 0.05
    return smooth + coupling


def complex_loss(params):
    """`loss` for complex params: real-valued, strongly convex in the real and imaginary
    parts, not quadratic, coupled, with its optimum away from 0."""
    centred = jax.tree.map(lambda p: p - (0.5 + 0.3j), params)
    smooth = sum(
        jnp.sum(jnp.logaddexp(p.real, -p.real) + jnp.logaddexp(p.imag, -p.imag) + 0.1 * abs(p) ** 2)
        for p in jax.tree.leaves(centred)
    )
    coupling = jnp.real(jnp.sum(params["w"] @ params["b"]) * params.get("s", 1.0)) * 0.05
    return smooth + coupling


def scan_trajectory(opt, params, steps=STEPS, needs_value_fn=False):
    """Parameters after each of `steps` updates, stacked on a leading axis (traceable).

    Rules that need the loss (Polyak step sizes, line searches) also get the value,
    the gradient and the loss function, under the names optax uses. Complex params
    descend `complex_loss` along the conjugate of JAX's gradient, the direction of
    steepest ascent that optax's rules expect.
    """
    is_complex = any(jnp.iscomplexobj(p) for p in jax.tree.leaves(params))
    objective = complex_loss if is_complex else loss

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(objective)(params)
        if is_complex:
            grads = jax.tree.map(jnp.conj, grads)
        extra = dict(value=value, grad=grads, value_fn=objective) if needs_value_fn else {}
        updates, state = opt.update(grads, state, params, **extra)
        params = apply_updates(params, updates)
        return (params, state), params

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[1]


def trajectory(opt, params, steps=STEPS, needs_value_fn=False):
    """`scan_trajectory` of one rule, jitted."""
    return jax.jit(lambda p: scan_trajectory(opt, p, steps, needs_value_fn))(params)


def trajectories(opts, params, steps=STEPS, needs_value_fn=False):
    """`trajectory` of each of `opts` from the same params, all in one jitted program.

    XLA's fixed cost per compilation is paid once for both sides (about a third of the
    cost of two separate programs). Each scan stays its own loop, so each trajectory is
    bitwise that of a program of its own.
    """
    return compiled(
        lambda p: [scan_trajectory(opt, p, steps, needs_value_fn) for opt in opts], params
    )


def build(name, reference, **overrides):
    spec, test = OPTIMIZERS[name], settings(name)
    kwargs = {"learning_rate": 0.05, **test.hparams, **overrides}
    if not reference:
        return spec.factory(**kwargs)
    # The registry's factory takes as learning_rate what optax may name otherwise.
    kwargs[test.learning_rate_arg] = kwargs.pop("learning_rate")
    return getattr(optax, spec.optax_name)(**kwargs)


def assert_trajectories_match(ours, theirs, dtype):
    """RTOL64 for float64 and complex128, ATOL32 (on |difference|) for float32 and complex64."""
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        wide = np.complex128 if jnp.iscomplexobj(b) else np.float64
        a, b = np.asarray(a, wide), np.asarray(b, wide)
        assert np.all(np.isfinite(b)), "reference trajectory is not finite"
        if jnp.finfo(dtype).bits == 64:
            np.testing.assert_allclose(a, b, rtol=RTOL64, atol=1e-300)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=ATOL32)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", WITH_OPTAX)
def test_per_step_parity(name, dtype):
    params, extra = initial_params(dtype, name), OPTIMIZERS[name].needs_value_fn
    opts = build(name, reference=False), build(name, reference=True)
    ours, theirs = trajectories(opts, params, needs_value_fn=extra)
    assert_trajectories_match(ours, theirs, dtype)


COMPLEX = [
    pytest.param(name, marks=pytest.mark.skip(reason=REAL_ONLY[name]))
    if name in REAL_ONLY
    else name
    for name in WITH_OPTAX
]


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64], ids=["complex128", "complex64"])
@pytest.mark.parametrize("name", COMPLEX)
def test_per_step_parity_with_complex_params(name, dtype):
    """Second moments are of |g|^2 (real), as optax's, not of g^2.

    complex128 to RTOL64 and complex64 to ATOL32 on the modulus of the difference: the
    real and imaginary parts are float64 and float32 numbers computed by the same
    arithmetic on both sides, as for real params.
    """
    params, extra = initial_params(dtype, name), OPTIMIZERS[name].needs_value_fn
    opts = build(name, reference=False), build(name, reference=True)
    ours, theirs = trajectories(opts, params, needs_value_fn=extra)
    assert_trajectories_match(ours, theirs, dtype)


# Rules whose learning_rate=None means what it does not mean in optax, and why.
NONE_DIFFERS = {
    "adadelta": "adadelta(learning_rate=None) is Zeiler's rule, lr = 1 (see its docstring)",
}


def optax_takes_no_learning_rate(name):
    """Whether optax's alias runs with learning_rate=None (no scaling)."""
    params = initial_params(jnp.float64, name)
    try:
        reference = build(name, reference=True, learning_rate=None)
        reference.update(params, reference.init(params), params)
    except TypeError:
        return False
    return True


NO_LEARNING_RATE = [
    pytest.param(name, marks=pytest.mark.skip(reason=NONE_DIFFERS[name]))
    if name in NONE_DIFFERS
    else name
    for name in WITH_OPTAX
    if not OPTIMIZERS[name].needs_value_fn
]


@pytest.mark.parametrize("name", NO_LEARNING_RATE)
def test_learning_rate_none_scales_nothing_as_optax(name):
    """learning_rate=None: the updates are the unscaled direction (no sign flip either),
    as optax's; a later transform gives the step, here -0.05. Where optax's alias cannot
    run without a learning rate, ours says so."""
    if not optax_takes_no_learning_rate(name):
        with pytest.raises(TypeError, match="learning_rate"):
            build(name, reference=False, learning_rate=None)
        return
    params = initial_params(jnp.float64, name)
    ours = optax.chain(build(name, False, learning_rate=None), optax.scale(-0.05))
    theirs = optax.chain(build(name, True, learning_rate=None), optax.scale(-0.05))
    assert_trajectories_match(*trajectories((ours, theirs), params), jnp.float64)


# Option sets (centered, momentum, masks, ...) each rule's test settings also check.
VARIANTS = [
    pytest.param(name, variant, id=f"{name}-{i}-{'+'.join(variant)}")
    for name in WITH_OPTAX
    for i, variant in enumerate(settings(name).variants)
]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "variant"), VARIANTS)
def test_per_step_parity_of_option_variants(name, variant, dtype):
    params, extra = initial_params(dtype, name), OPTIMIZERS[name].needs_value_fn
    opts = build(name, False, **variant), build(name, True, **variant)
    ours, theirs = trajectories(opts, params, needs_value_fn=extra)
    assert_trajectories_match(ours, theirs, dtype)


@pytest.mark.parametrize("name", WITH_OPTAX)
def test_parity_with_a_schedule(name):
    if name in OPTAX_TAKES_NO_SCHEDULE:
        pytest.skip(f"optax.{OPTIMIZERS[name].optax_name} takes no learning-rate schedule")
    schedule = optax.cosine_decay_schedule(0.1, decay_steps=STEPS, alpha=0.1)
    params, extra = initial_params(jnp.float64, name), OPTIMIZERS[name].needs_value_fn
    opts = build(name, False, learning_rate=schedule), build(name, True, learning_rate=schedule)
    ours, theirs = trajectories(opts, params, needs_value_fn=extra)
    assert_trajectories_match(ours, theirs, jnp.float64)


@pytest.mark.parametrize("name", WITH_OPTAX)
def test_vmapped_learning_rates_equal_separate_optax_runs(name):
    """Ours vmapped over three learning rates; optax run on each in turn (`lax.map`, one
    whole run per learning rate), both in one program."""
    learning_rates = jnp.array([0.01, 0.03, 0.1])
    params, extra = initial_params(jnp.float64, name), OPTIMIZERS[name].needs_value_fn

    def run(reference, lr):
        return scan_trajectory(build(name, reference, learning_rate=lr), params, 50, extra)

    def both(lrs):
        return jax.vmap(lambda lr: run(False, lr))(lrs), jax.lax.map(lambda lr: run(True, lr), lrs)

    ours, theirs = compiled(both, learning_rates)
    for i in range(len(learning_rates)):
        lane, separate = (jax.tree.map(lambda x, i=i: x[i], t) for t in (ours, theirs))
        assert_trajectories_match(lane, separate, jnp.float64)
