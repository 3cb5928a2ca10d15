"""The runs.csv schema, declared once in `bench.results.schema.RUNS`: what a sweep writes is
declared there, in its order, and `bench compare` and tuning read their columns from it."""

import pandas as pd
import pytest

from bench import plugins, suite
from bench.analysis import tuning
from bench.cli import main
from bench.results import compare, schema
from bench.spec import SuiteSpec

MLP = "mlp_digits_relu_32"  # a data-set problem with a metric of its own (test_accuracy)


@pytest.fixture(scope="module")
def mlp_runs():
    """runs.csv of one pair with every optional column: studies, cross-validation and a
    problem metric."""
    spec = SuiteSpec(
        problems=(MLP,),
        optimizers=("adam",),
        seeds=1,
        eval_seeds=1,
        steps={MLP: 10},
        protocol="algoperf",
        folds=2,
    )
    return suite.sweep_pair(spec, MLP, "adam")["tables"]["runs"]


def test_every_column_a_sweep_writes_is_declared_in_its_place(mlp_runs):
    swept = schema.hyperparameters(mlp_runs)
    assert swept[0] == "learning_rate" and len(swept) > 1
    assert schema.undeclared(mlp_runs) == list(plugins.problem(MLP).metrics)
    assert tuning.summarize(mlp_runs).columns[-1] == "median_test_accuracy"
    # Studies, cross-validation, the role: every declared column, in its declared order.
    declared = [c for c in mlp_runs.columns if c in schema.DECLARED]
    assert declared == list(schema.DECLARED)
    assert list(schema.ordered(mlp_runs, ["test_accuracy"]).columns) == list(mlp_runs.columns)


def test_the_order_puts_hyperparameters_and_problem_metrics_in_their_blocks():
    shuffled = pd.DataFrame(
        columns=[
            "cv_loss",
            "problem",
            "trial",
            "learning_rate",
            "b1",
            "optimizer",
            "seed",
            "seconds_per_step",
            "test_accuracy",
            "diverged",
            "role",
            "study",
        ]
    )
    assert list(schema.ordered(shuffled, ["test_accuracy"]).columns) == [
        "problem",
        "optimizer",
        "trial",
        "study",
        "learning_rate",
        "b1",
        "seed",
        "role",
        "diverged",
        "test_accuracy",
        "seconds_per_step",
        "cv_loss",
    ]


def test_a_column_declared_nowhere_stops_the_sweep(monkeypatch):
    built = suite.runs_frame
    monkeypatch.setattr(suite, "runs_frame", lambda result: built(result).assign(wall_seconds=1.0))
    spec = SuiteSpec(
        problems=("rosenbrock_2d",),
        optimizers=("sgd",),
        seeds=1,
        eval_seeds=1,
        grid={"sgd": (1e-3,)},
        steps={"rosenbrock_2d": 5},
    )
    with pytest.raises(schema.UndeclaredColumn, match="wall_seconds"):
        suite.sweep_pair(spec, "rosenbrock_2d", "sgd")


def test_an_undeclared_column_is_reported_and_compared_not_ignored(mlp_runs, tmp_path):
    runs = mlp_runs.assign(wall_seconds=1.0)
    assert schema.undeclared(runs) == ["test_accuracy", "wall_seconds"]
    keys = compare.key_columns("runs", runs)
    tolerances = compare.metric_columns("runs", runs, keys)
    assert tolerances["wall_seconds"] == schema.DEFAULT_TOLERANCE
    for folder, seconds in (("base", 1.0), ("new", 2.0)):
        (tmp_path / folder).mkdir()
        runs.assign(wall_seconds=seconds).to_csv(tmp_path / folder / "runs.csv", index=False)
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new")]) == 1


def test_compare_takes_its_keys_and_tolerances_from_the_schema(mlp_runs):
    keys = compare.key_columns("runs", mlp_runs)
    assert keys == ["problem", "optimizer", *schema.hyperparameters(mlp_runs), "seed"]
    tolerances = compare.metric_columns("runs", mlp_runs, keys)
    for name, column in schema.DECLARED.items():
        if name not in keys:
            assert tolerances.get(name) == column.tolerance, name
    assert tolerances["test_accuracy"] == schema.DEFAULT_TOLERANCE
    # Not compared by their role, whatever their names: ids, timings, wall-clock cost.
    for name in ("trial", "study", "compile_seconds", "seconds_per_step", "seconds_to_target"):
        assert name not in tolerances
    assert tolerances["steps_to_target"] == tolerances["diverged"] == schema.EXACT
    assert compare.TOLERANCES == {
        name: c.tolerance for name, c in schema.DECLARED.items() if c.tolerance is not None
    }


def test_a_summary_statistic_is_compared_as_the_column_it_reports():
    assert schema.tolerance("summary", "median_steps_to_target") == schema.EXACT
    assert schema.tolerance("summary", "ci_high_seconds_to_target") is None
    assert schema.tolerance("summary", "median_test_accuracy") == schema.DEFAULT_TOLERANCE
    assert schema.tolerance("summary", "learning_rate") == schema.DEFAULT_TOLERANCE
    assert schema.tolerance("summary", "trial") is None
