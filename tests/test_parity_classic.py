"""Per-step parity of the classic rules ported from pytorch_optimizer with their
reference classes, and their float32 runs against their own float64 trajectories.

Optional like tests/test_parity_torch.py: skipped without torch and pytorch-optimizer.
Each rule is built from the same keyword arguments on both sides (our names: b1, b2,
... for the reference's betas tuple, nu1, nu2 for its nus, learning_rate for its lr),
with hyperparameters away from the defaults, and one variant per option; both sides
take the gradient of tests/test_parity.py's loss at the iterate of every step for
STEPS steps, in float64, from its params (a 3 x 4 matrix, a vector and a scalar).
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

import test_parity_torch  # noqa: E402
from test_parity import initial_params  # noqa: E402
from test_parity_torch import RTOL64, STEPS, assert_same_trajectory, ours, theirs  # noqa: E402

from optimizers import OPTIMIZERS, lookahead  # noqa: E402

pytestmark = pytest.mark.reference


def reference(class_name, name, betas=(), nus=(), **fixed):
    """pytorch_optimizer's `class_name`, built from our rule `name`'s keyword arguments:
    the entries named in `betas` (and `nus`) gathered into its tuple, from our
    factory's defaults where not given; `fixed` added as they are."""

    def build(params, learning_rate, **kwargs):
        defaults = {
            key: parameter.default
            for key, parameter in inspect.signature(OPTIMIZERS[name].factory).parameters.items()
        }
        arguments = dict(kwargs)
        for group, keys in (("betas", betas), ("nus", nus)):
            if keys:
                arguments[group] = tuple(arguments.pop(key, defaults[key]) for key in keys)
        cls = getattr(pytorch_optimizer, class_name)
        return cls(params, lr=learning_rate, **arguments, **fixed)

    return build


def torch_lookahead_adam(params, learning_rate, b1=0.9, b2=0.999, eps=1e-8, **kwargs):
    """pytorch_optimizer's Lookahead around torch's own Adam."""
    inner = torch.optim.Adam(params, lr=learning_rate, betas=(b1, b2), eps=eps)
    return pytorch_optimizer.Lookahead(inner, **kwargs)


DECAY = {"weight_decay": 1e-3}
DECOUPLED = ({"weight_decouple": True}, {"weight_decouple": True, "fixed_decay": True})
COUPLED = ({"weight_decouple": False}, {"fixed_decay": True})

# name: (reference, non-default hyperparameters, variants: one per option at least).
# The Adam-like rules run with eps = 1e-2 (1e-3 where that suffices): near the minimum a
# step m / (sqrt(v) + eps) with a tiny eps is sign-like, the iteration oscillates, and
# there the last-bit differences between the libraries grow without bound (with
# eps = 1e-3: 5e-9 relative for qhadam, 3e-5 for adamod, 5e-2 for adamp with nesterov by
# step 300); eps = 1e-2 keeps the step linear in the moments and the iteration
# contracting, on both sides alike.
CASES = {
    "qhm": (
        reference("QHM", "qhm"),
        {"learning_rate": 0.05, "momentum": 0.9, "nu": 0.7, **DECAY},
        DECOUPLED,
    ),
    "qhadam": (
        reference("QHAdam", "qhadam", betas=("b1", "b2"), nus=("nu1", "nu2")),
        {"b1": 0.95, "b2": 0.99, "nu1": 0.7, "nu2": 0.9, "eps": 1e-2, **DECAY},
        DECOUPLED,
    ),
    "aggmo": (
        reference("AggMo", "aggmo"),
        {"learning_rate": 0.01, "betas": (0.0, 0.5, 0.8), **DECAY},
        DECOUPLED,
    ),
    "adabound": (
        reference("AdaBound", "adabound", betas=("b1", "b2")),
        {"final_lr": 0.05, "gamma": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-3, **DECAY},
        ({"ams_bound": True}, *COUPLED),
    ),
    "amsbound": (
        reference("AdaBound", "amsbound", betas=("b1", "b2"), ams_bound=True),
        {"final_lr": 0.05, "gamma": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-3, **DECAY},
        COUPLED,
    ),
    "adamod": (
        reference("AdaMod", "adamod", betas=("b1", "b2", "b3")),
        {"b1": 0.8, "b2": 0.95, "b3": 0.99, "eps": 1e-2, **DECAY},
        COUPLED,
    ),
    "diffgrad": (
        reference("DiffGrad", "diffgrad", betas=("b1", "b2")),
        {"b1": 0.8, "b2": 0.99, "eps": 1e-3, **DECAY},
        (
            {"ams_bound": True},
            {"rectify": True},
            {"rectify": True, "degenerated_to_sgd": False},
            {"rectify": True, "n_sma_threshold": 8},
            *COUPLED,
        ),
    ),
    "diffrgrad": (
        reference("DiffGrad", "diffrgrad", betas=("b1", "b2"), rectify=True),
        {"b1": 0.8, "b2": 0.99, "eps": 1e-3, **DECAY},
        ({"degenerated_to_sgd": False}, {"ams_bound": True}, *COUPLED),
    ),
    "pnm": (
        reference("PNM", "pnm", betas=("b1", "beta0")),
        {"b1": 0.8, "beta0": 0.5, **DECAY},
        COUPLED,
    ),
    "adapnm": (
        reference("AdaPNM", "adapnm", betas=("b1", "b2", "beta0")),
        {"b1": 0.8, "b2": 0.99, "beta0": 0.5, "eps": 1e-3, **DECAY},
        ({"ams_bound": False}, *COUPLED),
    ),
    "adanorm": (
        reference("AdaNorm", "adanorm", betas=("b1", "b2")),
        # r = 0.5: a running norm of short memory, near ||g_t|| itself. With r = 0.9 the
        # momentum is fed g_t scaled up to the norms of earlier, larger gradients, about
        # a unit step that oscillates around the minimum, where the two libraries' last
        # bits part (1e-10 relative by step 175, 6e-3 by step 300).
        {"b1": 0.8, "b2": 0.95, "r": 0.5, "eps": 1e-2, **DECAY},
        ({"ams_bound": True}, *COUPLED),
    ),
    "lookahead_adam": (
        torch_lookahead_adam,
        {"b1": 0.8, "b2": 0.99, "eps": 1e-3, "k": 3, "alpha": 0.6},
        ({"alpha": 0.5, "k": 5}, {"k": 1, "alpha": 0.3}),
    ),
    "ranger": (
        reference("Ranger", "ranger", betas=("b1", "b2")),
        {"b1": 0.9, "b2": 0.99, "alpha": 0.6, "k": 4, "eps": 1e-3, **DECAY},
        (
            {"degenerated_to_sgd": True},
            {"use_gc": False},
            {"gc_conv_only": True},
            {"n_sma_threshold": 8},
            {"alpha": 0.5, "k": 6},
            *COUPLED,
        ),
    ),
    "swats": (
        reference("SWATS", "swats", betas=("b1", "b2")),
        {"b1": 0.8, "b2": 0.99, "eps": 1e-3, **DECAY},
        ({"nesterov": True}, {"ams_bound": True}, *DECOUPLED),
    ),
    "adasmooth": (
        reference("AdaSmooth", "adasmooth", betas=("b1", "b2")),
        {"learning_rate": 1e-3, "b1": 0.4, "b2": 0.95, "eps": 1e-5, **DECAY},
        DECOUPLED,
    ),
    "apollo_dqn": (
        reference("ApolloDQN", "apollo_dqn"),
        {
            "learning_rate": 0.05,
            "init_lr": 1e-3,
            "beta": 0.8,
            "warmup_steps": 50,
            "eps": 1e-3,
            **DECAY,
        },
        (
            # The belief rebound adds eps' / a_t to the denominator: eps = 1e-3 leaves it
            # small enough for the steps to oscillate near the minimum, where last-bit
            # differences grow to 0.1 relative by step 100; 1e-2 keeps the iteration
            # contracting (6e-15 relative over all steps).
            {"rebound": "belief", "eps": 1e-2},
            {"weight_decay_type": "decoupled"},
            {"weight_decay_type": "stable"},
            {"init_lr": None},
        ),
    ),
    "nero": (
        reference("Nero", "nero"),
        {"learning_rate": 0.01, "beta": 0.99, "eps": 1e-6},
        ({"constraints": False},),
    ),
    "avagrad": (
        reference("AvaGrad", "avagrad", betas=("b1", "b2")),
        {"learning_rate": 0.05, "b1": 0.8, "b2": 0.99, "eps": 0.05, **DECAY},
        COUPLED,
    ),
    "adamp": (
        reference("AdamP", "adamp", betas=("b1", "b2")),
        {"b1": 0.8, "b2": 0.99, "eps": 1e-2, "weight_decay": 1e-2, "wd_ratio": 0.2},
        # delta = 2: every step counts as on a scale-invariant weight (|cos| < 1).
        ({"nesterov": True}, {"delta": 2.0}, {"delta": 2.0, "fixed_decay": True}, *COUPLED),
    ),
    "sgdp": (
        reference("SGDP", "sgdp"),
        {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2},
        # Not delta = 2 with fixed_decay: the steps then shrink the weight to where g_t
        # is radial, |cos(g_t, theta)| -> 1, and the test |cos| < 1 flips on a last bit
        # (a jump of 0.4 relative at step 187). fixed_decay's ratio is tested without
        # the projection, and the projection's wd_ratio without fixed_decay.
        ({"nesterov": True}, {"delta": 2.0}, *COUPLED),
    ),
}

# float64 on both sides, held to test_parity_torch's RTOL64 (1e-10 relative): the same
# operations, in places in another order (decoupled decay added to the step rather than
# multiplied into the params first, sums of leaves), a few roundings of 1.1e-16 per step.
# Measured over STEPS steps, every case and variant: 4.2e-11 at most (sgdp with
# delta = 2, its radial projection at every step), 1e-12 typically.


def variant_id(variant):
    return "+".join(f"{k}={v}" for k, v in variant.items()) or "default"


PARAMETRIZED = [
    pytest.param(name, variant, id=f"{name}-{variant_id(variant)}")
    for name, (_, _, variants) in CASES.items()
    for variant in ({}, *variants)
]


@pytest.mark.parametrize(("name", "variant"), PARAMETRIZED)
def test_per_step_parity_with_pytorch_optimizer(name, variant):
    build, hparams, _ = CASES[name]
    kwargs = {"learning_rate": 0.02, **hparams, **variant}
    assert_same_trajectory(name, build, kwargs, RTOL64)


# Entries of these params pass near 0 on their way (sgdp's reach 2e-3), where a relative
# tolerance is out of scale: 1e-11 absolute on params of order one, 100 roundings of
# 1.1e-16 (measured: 1.3e-12 at most, at an entry of 2e-3).
ATOL64 = 1e-11


def shapes_params(dtype):
    """A tall matrix, a rank-3 leaf and a vector."""
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    shapes = {"tall": (6, 3), "cube": (2, 3, 4), "b": (3,)}
    return {
        k: jax.random.normal(key, shape, jnp.float32).astype(dtype)
        for key, (k, shape) in zip(keys, shapes.items(), strict=True)
    }


def shapes_loss(params):
    """Strongly convex, not quadratic, with coupled leaves and optimum away from 0."""
    centred = jax.tree.map(lambda p: p - 0.5, params)
    smooth = sum(jnp.sum(jnp.logaddexp(p, -p) + 0.1 * p**2) for p in jax.tree.leaves(centred))
    return smooth + 0.05 * jnp.sum(params["tall"] @ params["b"]) * jnp.mean(params["cube"])


# The rules whose update depends on a leaf's shape: per-neuron (nero), per-channel
# (adamp, sgdp) or centralised over all axes but the first (ranger).
SHAPED = [
    ("nero", {}),
    ("adamp", {"delta": 2.0}),
    ("adamp", {}),
    ("sgdp", {"delta": 2.0}),
    ("ranger", {}),
    ("ranger", {"gc_conv_only": True}),
]


@pytest.mark.parametrize(
    ("name", "variant"), SHAPED, ids=[f"{name}-{variant_id(v)}" for name, v in SHAPED]
)
def test_per_step_parity_on_a_tall_matrix_and_a_rank_3_leaf(name, variant, monkeypatch):
    monkeypatch.setattr(test_parity_torch, "loss", shapes_loss)
    build, hparams, _ = CASES[name]
    kwargs = {"learning_rate": 0.02, **hparams, **variant}
    params = shapes_params(jnp.float64)
    got, expected = ours(name, params, **kwargs), theirs(build, params, **kwargs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert np.all(np.isfinite(b)), "reference trajectory is not finite"
        np.testing.assert_allclose(np.asarray(a), b, rtol=RTOL64, atol=ATOL64)


# float32 against float64, both ours: the same arithmetic rounded to 1.2e-7 instead of
# 1.1e-16 at each operation, carried along a contracting iteration. Measured over STEPS
# steps on params of order one: 2e-7 to 1.7e-6 (adasmooth, whose early steps are
# g / sqrt((1 - b2)^2 g^2 + eps), 20 times lr), so 2e-5 absolute, 10 times the largest.
ATOL32_DEFAULT = 2e-5
# apollo_dqn divides by max(|B_t|, 0.01), 100 times a step's rounding: measured 3.0e-5.
ATOL32 = {"apollo_dqn": 3e-4}


@pytest.mark.parametrize("name", list(CASES))
def test_float32_stays_near_the_float64_trajectory(name):
    _, hparams, _ = CASES[name]
    kwargs = {"learning_rate": 0.02, **hparams}
    got = ours(name, initial_params(jnp.float32), **kwargs)
    expected = ours(name, initial_params(jnp.float64), **kwargs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(
            np.asarray(a, np.float64), b, rtol=0, atol=ATOL32.get(name, ATOL32_DEFAULT)
        )


def test_swats_switches_to_sgd_within_the_steps_compared():
    """The SGD phase is exercised by the parity test above: the switch happens."""
    _, hparams, _ = CASES["swats"]
    opt = OPTIMIZERS["swats"].factory(**{"learning_rate": 0.02, **hparams})
    params = initial_params(jnp.float64)
    state = opt.init(params)
    for _ in range(STEPS):
        updates, state = opt.update(jax.grad(test_parity_torch.loss)(params), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    assert bool(state.sgd)


def short_trajectory(name, params, steps, **kwargs):
    opt = OPTIMIZERS[name].factory(**kwargs)

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(test_parity_torch.loss)(params), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return (params, state), params

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[1]


@pytest.mark.parametrize("name", list(CASES))
def test_traced_hyperparameters_equal_separate_runs(name):
    """Every dimension of the rule's search space as a vmapped lane (as the benchmark
    sweeps them) gives each lane the trajectory of its numbers passed one by one."""
    _, hparams, _ = CASES[name]
    space = OPTIMIZERS[name].space()
    fixed = {k: v for k, v in hparams.items() if k not in space}
    lanes = {k: jnp.array([dim.value(0.3), dim.value(0.7)]) for k, dim in space.items()}
    params = initial_params(jnp.float64)
    swept = jax.jit(jax.vmap(lambda lane: short_trajectory(name, params, 30, **fixed, **lane)))
    together = swept(lanes)
    for i in range(2):
        numbers = {k: float(v[i]) for k, v in lanes.items()}
        alone = jax.jit(
            lambda numbers=numbers: short_trajectory(name, params, 30, **fixed, **numbers)
        )()
        for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(
    ("name", "argument", "value"),
    [
        ("qhm", "nu", 1.5),
        ("qhadam", "nu1", -0.1),
        ("qhadam", "nu2", 2.0),
        ("aggmo", "betas", (0.5, 1.0)),
        ("aggmo", "betas", ()),
        ("adabound", "final_lr", -0.1),
        ("adabound", "gamma", -1e-3),
        ("pnm", "beta0", 1.5),
        ("adapnm", "beta0", -0.5),
        ("adanorm", "r", 1.0),
        ("lookahead_adam", "k", 0),
        ("lookahead_adam", "alpha", 1.5),
        ("ranger", "k", 0),
        ("apollo_dqn", "rebound", "none"),
        ("apollo_dqn", "weight_decay_type", "l1"),
        ("apollo_dqn", "warmup_steps", -1),
        ("apollo_dqn", "beta", 1.0),
        ("nero", "beta", 1.0),
        ("adamp", "delta", -0.1),
        ("sgdp", "wd_ratio", -0.1),
        ("swats", "weight_decay", -1e-3),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(name, argument, value):
    with pytest.raises(ValueError, match=argument):
        OPTIMIZERS[name].factory(learning_rate=0.1, **{argument: value})


def test_lookahead_pullback_momentum_is_not_implemented():
    with pytest.raises(NotImplementedError, match="pullback_momentum"):
        lookahead(OPTIMIZERS["adam"].factory(0.1), pullback_momentum="pullback")
