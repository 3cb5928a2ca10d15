"""The registry as the benchmark and the tests read it: entries declared by the family
modules, capabilities as one predicate, and the runner honouring them."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from parity_settings import SETTINGS

import optimizers
from bench.sweep.arguments import skip_reason
from bench.sweep.runner import run_sweep
from optimizers import OPTIMIZERS, apply_updates, sgd
from optimizers.registry import LR_GRID, OptimizerSpec, collect, exact
from problems import PROBLEMS

TESTS = Path(__file__).parent


def test_entries_declared_by_family_modules_are_registered_and_exported():
    entries, exports = collect(optimizers)
    assert entries, "no family module declares a REGISTRY"
    for name, spec in entries.items():
        assert OPTIMIZERS[name] is spec
        assert getattr(optimizers, spec.factory.__name__) is spec.factory, name


def test_every_rule_with_test_settings_is_registered():
    # tests/parity_settings.py is keyed by registry name: a renamed rule leaves a stale key.
    stale = sorted(set(SETTINGS) - set(OPTIMIZERS))
    assert not stale, f"tests/parity_settings.py sets rules that are not registered: {stale}"


def test_a_name_registered_twice_is_an_error(tmp_path, monkeypatch):
    package = tmp_path / "twice"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in ("a", "b"):
        (package / f"{module}.py").write_text(
            "from optimizers import OptimizerSpec, sgd\n"
            "REGISTRY = {'same': OptimizerSpec(sgd, (0.1,))}\n"
            "__all__ = []\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    import twice

    with pytest.raises(ValueError, match="same"):
        collect(twice)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_grid_is_log_spaced_and_at_most_nine_points(name):
    # At most 9 points keeps the suite's wall time in hand as rules are added.
    log_grid = np.log(OPTIMIZERS[name].learning_rates)
    assert 1 <= len(log_grid) <= 9
    steps = np.diff(log_grid)
    assert np.all(steps > 0) and np.allclose(steps, steps[:1])


def test_the_skip_predicate_reads_each_capability():
    stochastic, deterministic = PROBLEMS["noisy_quadratic_100d"], PROBLEMS["quadratic_20d_cond1e1"]
    assert "stochastic" in skip_reason(stochastic, OptimizerSpec(sgd, LR_GRID, needs_value_fn=True))
    # A rule that takes the minibatch's loss (MoMo, SAM, Sophia) runs on minibatches.
    assert skip_reason(stochastic, OptimizerSpec(sgd, LR_GRID, needs_loss=True)) is None
    matrix_only = OptimizerSpec(sgd, LR_GRID, matrix_only=True)
    assert "matrix" in skip_reason(deterministic, matrix_only)
    assert skip_reason(PROBLEMS["mlp_digits_relu_32"], matrix_only) is None


def test_rules_that_take_the_loss_get_it_under_optax_names():
    loss = lambda p: jnp.sum(p**2)  # noqa: E731
    params = jnp.arange(3.0)
    extras = OptimizerSpec(sgd, LR_GRID, needs_loss=True).update_extras(1.0, params, loss)
    assert set(extras) == {"value", "grad", "value_fn", "obj_fn", "grad_fn"}
    np.testing.assert_array_equal(extras["grad_fn"](params, 0), 2 * params)
    assert OptimizerSpec(sgd, LR_GRID).update_extras(1.0, params, loss) == {}
    # A line search hands any further argument to value_fn: it gets optax's three only.
    line_search = OptimizerSpec(sgd, LR_GRID, needs_value_fn=True)
    assert set(line_search.update_extras(1.0, params, loss)) == {"value", "grad", "value_fn"}


@pytest.mark.parametrize("name", [n for n, s in OPTIMIZERS.items() if s.eval_params])
def test_the_runner_records_the_loss_at_the_evaluation_point(name):
    """The recorded curve is the loss at eval_params(state, params), not at the iterate."""
    spec, problem, steps = OPTIMIZERS[name], PROBLEMS["quadratic_20d_cond1e3"], 30
    result = run_sweep(problem, name, [0.01], seeds=[0], steps=steps, dtype="float64")
    opt = spec.factory(learning_rate=0.01, **spec.hparams)
    float64 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)  # noqa: E731
    data = float64(problem.data())
    params = float64(problem.init(jax.random.split(jax.random.PRNGKey(0))[0]))
    state = opt.init(params)
    at_point, at_iterate = [], []
    for _ in range(steps + 1):
        at_point.append(problem.loss(spec.eval_params(state, params), data))
        at_iterate.append(problem.loss(params, data))
        updates, state = opt.update(jax.grad(problem.loss)(params, data), state, params)
        params = apply_updates(params, updates)
    np.testing.assert_allclose(result.losses[0], at_point, rtol=1e-9)
    assert not np.allclose(result.losses[0], at_iterate, rtol=1e-6)


def test_a_namespace_without_registry_modules_collects_nothing(tmp_path, monkeypatch):
    package = tmp_path / "empty_rules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import empty_rules

    assert collect(empty_rules) == ({}, {})


# Options of the optax.contrib and pytorch_optimizer rules that are not implemented.
UNSUPPORTED = [
    ("muon", {"preconditioning": "aol"}),
    ("muon", {"muon_weight_dimension_numbers": {"w": None}}),
    ("galore", {"weight_dimension_numbers": {"w": None}}),
    ("sophia", {"verbose": True}),
    ("mars", {"mars_type": "shampoo"}),
    ("mars", {"weight_decouple": False}),
    ("mars", {"ams_bound": True}),
    ("mars", {"cautious": True}),
    ("mars", {"maximize": True}),
    ("shampoo", {"maximize": True}),
]


@pytest.mark.parametrize(("name", "option"), UNSUPPORTED, ids=lambda x: str(x)[:30])
def test_unsupported_options_raise_not_implemented_naming_them(name, option):
    (argument,) = option
    with pytest.raises(NotImplementedError, match=argument):
        getattr(optimizers, name)(learning_rate=0.1, **option)


def test_sam_across_devices_is_not_implemented():
    with pytest.raises(NotImplementedError, match="batch_axis_name"):
        optimizers.sam(sgd(0.1), sgd(0.05), batch_axis_name="batch")


def test_every_registered_grid_is_short_decimals_the_same_on_every_machine():
    # np.logspace's last bit differs between CPUs (lion's 1e-05 was stored as
    # 9.999999999999999e-06 on one): the grids are rounded to 12 significant digits.
    for name, spec in OPTIMIZERS.items():
        assert all(exact(x) == x and len(repr(x)) <= 20 for x in spec.learning_rates), name
    assert exact(9.999999999999999e-06) == 1e-05


# A reference that names a package: "<package> <version> <class or function>[...]".
PACKAGE_REFERENCE = re.compile(r"(?P<package>\S+) (?P<version>\d+(?:\.\d+)+) (?P<name>\w+)")


def loads(text: str, package: str) -> bool:
    """Whether a test file's `text` imports or loads `package` (a distribution or dotted
    module name: "pytorch-optimizer", "optax.contrib")."""
    module = package.replace("-", "_")
    parent, _, child = module.rpartition(".")
    forms = [
        rf"^\s*import {re.escape(module)}\b",
        rf"^\s*from {re.escape(module)}\b[\w.]* import ",
        rf"\b(?:importorskip|find_spec|import_module)\(\"{re.escape(module)}\b",
    ]
    if parent:
        forms.append(rf"^\s*from {re.escape(parent)} import (?:.*, )?{re.escape(child)}\b")
    return any(re.search(form, text, re.MULTILINE) for form in forms)


def test_every_built_in_rule_names_what_it_is_checked_against():
    # `bench list` prints it: the optax alias, or the reference of a rule optax lacks.
    for name, spec in OPTIMIZERS.items():
        assert bool(spec.optax_name) != bool(spec.reference), (
            f"{name}: give an optax_name or a reference (not both): "
            f"{spec.optax_name!r}, {spec.reference!r}"
        )


def test_every_reference_package_is_loaded_by_a_parity_test():
    parity = {path.name: path.read_text() for path in sorted(TESTS.glob("test_parity_*.py"))}
    for name, spec in OPTIMIZERS.items():
        if not spec.reference:
            continue
        match = PACKAGE_REFERENCE.match(spec.reference)
        if match is None:
            # In words (no package has the rule): the rule's own test file checks it.
            assert (TESTS / f"test_{name}.py").exists(), (
                f"{name}: reference {spec.reference!r} names no '<package> <version> <class>' "
                f"and tests/test_{name}.py does not exist"
            )
            continue
        package, reference = match["package"], match["name"]
        loading = [file for file, text in parity.items() if loads(text, package)]
        assert loading, f"{name}: no tests/test_parity_*.py loads {package} ({spec.reference!r})"
        assert any(re.search(rf"\b{reference}\b", parity[file]) for file in loading), (
            f"{name}: {reference} is named in none of {loading}, which load {package}"
        )


def test_every_reference_version_is_the_pinned_one():
    # pyproject.toml pins the reference packages (its `reference` extra, and the
    # `pip install --no-deps` line for timm and apollo-torch); optax's contrib is optax's.
    pyproject = (TESTS.parent / "pyproject.toml").read_text()
    for name, spec in OPTIMIZERS.items():
        match = PACKAGE_REFERENCE.match(spec.reference or "")
        if match and not match["package"].startswith("optax"):
            pin = f"{match['package']}=={match['version']}"
            assert pin in pyproject, f"{name}: {spec.reference!r}, but pyproject.toml lacks {pin}"


@pytest.mark.parametrize("name", [n for n, s in OPTIMIZERS.items() if s.matrix_only])
def test_a_matrix_rule_takes_a_lone_matrix_as_its_params(name):
    """A rule that splits the params into matrices and the rest (AdamW's part) steps a
    lone array as it steps the same array in a tree: the other part is then empty."""
    matrix = jnp.arange(12.0).reshape(4, 3) / 10
    grads = jnp.cos(matrix)
    opt = OPTIMIZERS[name].factory(learning_rate=0.01, weight_decay=0.1)
    alone, _ = opt.update(grads, opt.init(matrix), matrix)
    in_tree, _ = opt.update({"w": grads}, opt.init({"w": matrix}), {"w": matrix})
    np.testing.assert_array_equal(alone, in_tree["w"])
    assert np.any(np.asarray(alone) != 0)
