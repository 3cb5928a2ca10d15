"""Per-step parity of the rules of optax.contrib with their hand-written counterparts.

Each registered rule that optax.contrib also has gets a `Case` here: the non-default
hyperparameters both sides are built with, option variants, and how to build optax's
side. Both run the same jitted `lax.scan` on tests/test_parity.py's loss from the
same start (a matrix, a vector and a scalar), and the parameters after every one of
STEPS steps are compared.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax import contrib
from parity_settings import compiled, matrices_only
from test_parity import initial_params, loss

import optimizers
from optimizers import OPTIMIZERS, apply_updates

STEPS = 300
# float64: the same arithmetic in the same order on both sides; a handful of roundings
# of 1.1e-16 may differ per step where XLA fuses the two programs differently, and
# 1e-10 relative leaves room for 300 steps while any change to a rule moves it further.
RTOL64 = 1e-10
# float32 (eps = 1.2e-7), parameters of order one: every case's trajectories are bitwise
# equal on jax 0.10.2 with optax 0.2.8 (where a rule's rounding depends on how XLA
# compiles it, sam's selection and muon's batched products, the rule computes as optax
# does); 2e-6 (about 16 ulps) leaves room for another fusion of the same operations, as
# in tests/test_parity.py, and no more: a changed rule moves them far further.
ATOL32 = 2e-6


@dataclass(frozen=True)
class Case:
    """How to check one registered rule against optax.contrib."""

    # optax's side, called with the same keyword arguments as ours.
    reference: Callable[..., Any]
    # Non-default hyperparameters both sides get.
    hparams: dict[str, Any] = field(default_factory=dict)
    # Option sets, each applied over hparams, also checked.
    variants: tuple[dict[str, Any], ...] = ()
    # Our side, when it is not the registry's factory (wrappers of a base rule).
    ours: Callable[..., Any] | None = None
    # The registry entry whose capabilities apply, for a case that is not one itself.
    registered_as: str | None = None

    def spec(self, name):
        return OPTIMIZERS[self.registered_as or name]


CASES: dict[str, Case] = {
    "adopt": Case(
        contrib.adopt,
        {"b1": 0.8, "b2": 0.99, "eps": 1e-4},
        variants=(
            {"nesterov": True},
            {"use_clipping": False},
            {"clip_value_fn": lambda t: 0.5 + 0.1 * t},
        ),
    ),
    "acprop": Case(
        contrib.acprop,
        {"b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-12, "weight_decay": 1e-3},
        variants=({"mask": matrices_only},),
    ),
    "ademamix": Case(
        contrib.ademamix,
        {
            "b1": 0.8,
            "b2": 0.99,
            "b3": 0.995,
            "alpha": 3.0,
            "eps": 1e-6,
            "eps_root": 1e-9,
            "weight_decay": 1e-3,
        },
        variants=(
            {
                "b3": optax.linear_schedule(0.9, 0.999, 100),
                "alpha": optax.linear_schedule(0.0, 5.0, 100),
                "mask": matrices_only,
            },
        ),
    ),
    "simplified_ademamix": Case(
        contrib.simplified_ademamix,
        {"b1": 0.9, "b2": 0.9, "alpha": 2.0, "eps": 1e-6, "eps_root": 1e-9, "weight_decay": 1e-3},
        variants=({"alpha": optax.linear_schedule(0.0, 5.0, 100), "mask": matrices_only},),
    ),
    "cocob": Case(
        contrib.cocob,
        {"alpha": 50.0, "eps": 1e-6, "weight_decay": 1e-3},
        variants=({"mask": matrices_only},),
    ),
    "madgrad": Case(contrib.madgrad, {"momentum": 0.8, "weight_decay": 1e-3, "eps": 1e-5}),
    "dog": Case(
        contrib.dog,
        {"init_step": ("heuristic", 1e-3), "eps": 1e-6, "weight_decay": 1e-3},
        variants=(
            {"init_step": ("distance", 0.1), "mask": matrices_only},
            {"init_step": ("learning_rate", 0.01), "weight_decay": None},
        ),
    ),
    "dowg": Case(
        contrib.dowg,
        {"init_estim_sq_dist": 1e-3, "eps": 1e-5, "weight_decay": 1e-3},
        variants=({"init_estim_sq_dist": None, "weight_decay": None},),
    ),
    "dadapt_adamw": Case(
        contrib.dadapt_adamw,
        {"betas": (0.8, 0.99), "eps": 1e-6, "estim_lr0": 1e-3, "weight_decay": 1e-3},
    ),
    "prodigy": Case(
        contrib.prodigy,
        {
            "betas": (0.8, 0.99),
            "beta3": 0.95,
            "eps": 1e-6,
            "estim_lr0": 1e-3,
            "estim_lr_coef": 0.8,
            "weight_decay": 1e-3,
        },
        variants=({"safeguard_warmup": True, "beta3": None},),
    ),
    "momo": Case(
        contrib.momo,
        {"beta": 0.8, "lower_bound": 1.0, "weight_decay": 1e-3},
        variants=({"adapt_lower_bound": True, "lower_bound": 5.0},),
    ),
    "momo_adam": Case(
        contrib.momo_adam,
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "lower_bound": 1.0, "weight_decay": 1e-3},
        variants=({"adapt_lower_bound": True, "lower_bound": 5.0},),
    ),
    "schedule_free_sgd": Case(
        contrib.schedule_free_sgd,
        {"b1": 0.8, "weight_decay": 1e-3, "weight_lr_power": 1.5},
        variants=({"warmup_steps": 20, "weight_decay": None},),
    ),
    "schedule_free_adamw": Case(
        contrib.schedule_free_adamw,
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 1e-3, "weight_lr_power": 1.5},
        variants=({"warmup_steps": 20},),
    ),
    "mechanize": Case(
        lambda learning_rate, **kw: contrib.mechanize(optax.adam(learning_rate), **kw),
        {"weight_decay": 1e-3, "eps": 1e-7, "s_init": 1e-4, "num_betas": 4},
    ),
    "sophia": Case(
        contrib.sophia,
        {
            "b1": 0.9,
            "b2": 0.95,
            "eps": 1e-6,
            "weight_decay": 1e-3,
            "gamma": 0.05,
            "clip_threshold": 0.5,
            "update_interval": 3,
        },
        # Unclipped, the step needs an eps that bounds it where Hutchinson's estimate of
        # the curvature is small or negative.
        variants=({"clip_threshold": None, "eps": 0.5, "weight_decay_mask": matrices_only},),
    ),
    "sam": Case(
        lambda learning_rate, radius=0.05, momentum=0.9: contrib.sam(
            optax.sgd(learning_rate, momentum),
            optax.chain(contrib.normalize(), optax.sgd(radius)),
            opaque_mode=True,
        ),
        {"radius": 0.1, "momentum": 0.8},
    ),
    "muon": Case(
        contrib.muon,
        {
            "ns_steps": 4,
            "beta": 0.8,
            "eps": 1e-7,
            "weight_decay": 1e-3,
            "adam_b1": 0.8,
            "adam_b2": 0.99,
            "adam_eps_root": 1e-9,
            "adam_weight_decay": 1e-3,
        },
        variants=(
            {
                "nesterov": False,
                "adaptive": True,
                "weight_decay_mask": {"w": False, "b": True, "s": True},
            },
            {
                "ns_coeffs": "dion",
                "ns_steps": 5,
                "preconditioning": "spectral",
                "consistent_rms": 0.2,
            },
            {"adam_learning_rate": 0.01, "mu_dtype": "float32"},
        ),
    ),
    "galore": Case(
        contrib.galore,
        {"rank": 2, "update_proj_gap": 7, "scale": 0.5, "weight_decay": 1e-3},
        variants=({"rank": 1, "mask": matrices_only},),
    ),
    # SAM's cycle of separate updates (not registered: the params alternate between the
    # outer and the ascended points), with Adam outside and a state carried across cycles.
    "sam-cycle": Case(
        lambda learning_rate, **kw: contrib.sam(
            optax.adam(learning_rate), optax.chain(contrib.normalize(), optax.sgd(0.1)), **kw
        ),
        {"sync_period": 3, "reset_state": False},
        ours=lambda learning_rate, **kw: optimizers.sam(
            optimizers.adam(learning_rate),
            optimizers.transforms.chain(optimizers.normalize(), optimizers.sgd(0.1)),
            **kw,
        ),
        registered_as="sam",
    ),
}


def scan_trajectory(opt, spec, params, steps=STEPS, evaluate=None):
    """Parameters after each of `steps` updates, stacked on a leading axis (traceable);
    or, given `evaluate(state, params)`, the evaluation point after each update."""

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        extras = accepted(opt.update, spec.update_extras(value, grads, loss))
        updates, state = opt.update(grads, state, params, **extras)
        params = apply_updates(params, updates)
        return (params, state), params if evaluate is None else evaluate(state, params)

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[1]


def trajectories(runs, spec, params, steps=STEPS):
    """`scan_trajectory` of each `(opt, evaluate)` of `runs` from the same params, all in
    one jitted program: XLA's fixed cost per program is paid once, and each scan is its
    own loop (XLA fuses nothing across them), so the numbers are those of separate ones."""
    return compiled(
        lambda p: [scan_trajectory(opt, spec, p, steps, evaluate) for opt, evaluate in runs], params
    )


def accepted(update, extras):
    """The extras `update` takes: all of them with **kwargs (ours), else those it names
    (optax.contrib.sam's update takes grad_fn only)."""
    parameters = inspect.signature(update).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return extras
    return {k: v for k, v in extras.items() if k in parameters}


def build(name, reference, **overrides):
    case = CASES[name]
    kwargs = {"learning_rate": 0.05, **case.hparams, **overrides}
    if reference:
        return case.reference(**kwargs)
    return (case.ours or case.spec(name).factory)(**kwargs)


def assert_trajectories_match(ours, theirs, dtype):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.all(np.isfinite(b)), "reference trajectory is not finite"
        if dtype == jnp.float64:
            np.testing.assert_allclose(a, b, rtol=RTOL64, atol=1e-300)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=ATOL32)


def compare(name, dtype, steps=STEPS, **overrides):
    spec, params = CASES[name].spec(name), initial_params(dtype)
    runs = [(build(name, False, **overrides), None), (build(name, True, **overrides), None)]
    ours, theirs = trajectories(runs, spec, params, steps)
    assert_trajectories_match(ours, theirs, dtype)
    return ours


def test_every_rule_checked_here_names_optax_contrib_as_its_reference():
    # tests/test_registry.py holds every registered rule to an optax alias or a reference.
    for name, case in CASES.items():
        reference = case.spec(name).reference or ""
        assert reference.startswith("optax.contrib "), f"{name}: reference {reference!r}"


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_per_step_parity_with_optax_contrib(name, dtype):
    ours = compare(name, dtype)
    # A rule that never moves would match a reference that never moves.
    moved = [np.max(np.abs(leaf[-1] - leaf[0])) for leaf in jax.tree.leaves(ours)]
    assert max(moved) > 1e-3, f"{name} barely moves the parameters in {STEPS} steps"


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case.spec(n).eval_params])
def test_evaluation_points_match_optax(name):
    spec, params = OPTIMIZERS[name], initial_params(jnp.float64)
    runs = [
        (build(name, False), spec.eval_params),
        (build(name, True), contrib.schedule_free_eval_params),
        (build(name, False), None),
    ]
    ours, theirs, iterates = trajectories(runs, spec, params)
    assert_trajectories_match(ours, theirs, jnp.float64)
    # The evaluation point is not the iterate.
    assert not np.allclose(iterates["w"], ours["w"])


VARIANTS = [
    pytest.param(name, variant, id=f"{name}-{i}-{'+'.join(variant)}")
    for name, case in CASES.items()
    for i, variant in enumerate(case.variants)
]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "variant"), VARIANTS)
def test_per_step_parity_of_option_variants(name, variant, dtype):
    compare(name, dtype, **variant)


@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_a_schedule(name):
    schedule = optax.cosine_decay_schedule(0.1, decay_steps=STEPS, alpha=0.1)
    compare(name, jnp.float64, learning_rate=schedule)


@pytest.mark.parametrize("name", list(CASES))
def test_vmapped_learning_rates_equal_separate_optax_runs(name):
    """Ours vmapped over three learning rates; optax run on each in turn (`lax.map`, one
    whole run per learning rate), both in one program."""
    spec, params = CASES[name].spec(name), initial_params(jnp.float64)
    # optax gets the learning rate as a float64 array too, as vmap hands it to ours: a
    # Python float is weakly typed, and where a rule multiplies it by a float32 value
    # (madgrad's sqrt(k + 1) of an int32 count) the product would be rounded to float32.
    learning_rates = jnp.array([0.01, 0.03, 0.1], jnp.float64)

    def run(reference, lr):
        return scan_trajectory(build(name, reference, learning_rate=lr), spec, params, 50)

    def both(lrs):
        return jax.vmap(lambda lr: run(False, lr))(lrs), jax.lax.map(lambda lr: run(True, lr), lrs)

    ours, theirs = compiled(both, learning_rates)
    for i in range(len(learning_rates)):
        lane, separate = (jax.tree.map(lambda x, i=i: x[i], t) for t in (ours, theirs))
        assert_trajectories_match(lane, separate, jnp.float64)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
# The matrix rules of optax.contrib; those of pytorch_optimizer are checked on the same
# leaves in their own parity files.
@pytest.mark.parametrize(
    "name", [n for n, spec in OPTIMIZERS.items() if spec.matrix_only and n in CASES]
)
def test_matrix_rules_on_a_tall_matrix_and_a_rank_3_leaf(name, dtype):
    """Tall matrices take the other branch (Muon transposes them, GaLore projects from the
    left); a rank-3 leaf is not a matrix to either (AdamW for Muon, Adam for GaLore)."""
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    params = {
        "tall": jax.random.normal(keys[0], (5, 3), jnp.float32).astype(dtype),
        "cube": jax.random.normal(keys[1], (2, 2, 2), jnp.float32).astype(dtype),
    }

    def tall_loss(params):
        return sum(jnp.sum(jnp.logaddexp(p - 0.5, 0.5 - p)) for p in jax.tree.leaves(params))

    spec, kwargs = OPTIMIZERS[name], {"learning_rate": 0.05, **CASES[name].hparams}

    def run(opt, params):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(tall_loss)(params), state, params)
            params = apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params, opt.init(params)), None, STEPS)[1]

    opts = spec.factory(**kwargs), CASES[name].reference(**kwargs)
    # Both in one program (one compilation); each scan is its own loop.
    ours, theirs = compiled(lambda p: [run(opt, p) for opt in opts], params)
    assert_trajectories_match(ours, theirs, dtype)


def test_the_rules_are_importable_from_the_package():
    factories = {case.spec(name).factory.__name__ for name, case in CASES.items()}
    missing = [name for name in factories if not hasattr(optimizers, name)]
    assert not missing, f"factories not exported by optimizers: {missing}"
