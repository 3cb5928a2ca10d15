"""Your own optimizer and problem: `bench run --optimizer/--problem/--space/--against`,
entry points, `bench list` and `bench merge`, on a small results folder made here."""

import functools
import json
import shutil
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import plugins
from bench.cli import main
from bench.results import meta, schema
from bench.sweep.runner import resolve_optimizer, run_sweep
from optimizers import sgd
from optimizers.registry import LR_GRID

PROBLEM_NAMES = ["rosenbrock_2d", "quadratic_20d_cond1e1"]
SMALL = ["--problems", *PROBLEM_NAMES, "--steps", "20", "--seeds", "1"]
TABLES = ("runs", "curves", "paths", "skipped")

RULE = """
from optimizers import sgd

def rule(learning_rate):
    return sgd(learning_rate, momentum=0.5)
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Every test registers its own --optimizer and --problem entries."""
    monkeypatch.setattr(plugins, "_optimizers", {})
    monkeypatch.setattr(plugins, "_problems", {})


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A results folder: 2 problems x sgd and adam, 20 steps, 1 tuning seed."""
    out = tmp_path_factory.mktemp("base") / "results"
    assert main(["run", *SMALL, "--optimizers", "sgd", "adam", "--out", str(out)]) == 0
    return out


@pytest.fixture
def rule_file(tmp_path) -> Path:
    path = tmp_path / "my_rule.py"  # outside the repository
    path.write_text(RULE)
    return path


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _rows(folder: Path, table: str, optimizers: set[str]) -> list[str]:
    lines = schema.read_bytes(folder / schema.file_name(table)).decode().splitlines()
    return [lines[0]] + [line for line in lines[1:] if line.split(",")[1] in optimizers]


@pytest.mark.slow
def test_a_rule_in_a_file_is_ranked_against_a_folder_without_rerunning_it(
    base, rule_file, tmp_path, capsys
):
    before = _snapshot(base)
    out = tmp_path / "out"
    assert (
        main(["run", "--optimizer", f"{rule_file}:rule", "--against", str(base), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert "not re-run" in printed[0]
    assert printed[1] == f"results: {out}"
    assert len(printed) == 5 and any(line.endswith(")") and " rule " in line for line in printed)
    assert _snapshot(base) == before  # --against never changes the folder it reads
    for table in TABLES:  # the baselines' rows, byte for byte
        assert _rows(out, table, {"sgd", "adam"}) == _rows(base, table, {"sgd", "adam"})
    runs = pd.read_csv(out / "runs.csv.gz")
    old = pd.read_csv(base / "runs.csv.gz")
    assert set(runs["optimizer"]) == {"sgd", "adam", "rule"}
    assert set(runs["problem"]) == set(PROBLEM_NAMES)
    kept = runs[runs["optimizer"] != "rule"].reset_index(drop=True)
    pd.testing.assert_series_equal(kept["compile_seconds"], old["compile_seconds"])
    assert set(pd.read_csv(out / "summary.csv")["optimizer"]) == {"sgd", "adam", "rule"}
    assert "`rule`" in (out / "TABLES.md").read_text()
    record = json.loads((out / "meta.json").read_text())
    assert record["against"]["re_run"] == [] and record["against"]["differences"] == {}
    assert record["spec"]["optimizers"] == ["sgd", "adam", "rule"]


@pytest.mark.slow
def test_an_added_rule_below_the_top_five_is_printed_with_its_rank(base, capsys):
    from bench.cli import _top

    _top(base, added=["sgd", "adam"], count=1)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"results: {base}"
    first = printed[1].split()[1]
    other = ({"sgd", "adam"} - {first}).pop()
    assert len(printed) == 3
    assert printed[2].startswith(f"  2. {other} (score ") and printed[2].endswith(") of 2")


@pytest.mark.slow
def test_a_differing_fingerprint_reruns_the_baselines_and_says_why(
    base, rule_file, tmp_path, capsys
):
    older = tmp_path / "older"
    shutil.copytree(base, older)
    record = json.loads((older / "meta.json").read_text())
    record["fingerprint"]["jax"] = "0.4.30"
    (older / "meta.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    assert (
        main(
            ["run", "--optimizer", f"{rule_file}:rule", "--against", str(older), "--out", str(out)]
        )
        == 0
    )
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("re-running ") and "jax" in line and "0.4.30" in line
    against = json.loads((out / "meta.json").read_text())["against"]
    assert sorted(against["re_run"]) == ["adam", "sgd"]
    assert list(against["differences"]) == ["jax"]
    assert set(pd.read_csv(out / "runs.csv.gz")["optimizer"]) == {"sgd", "adam", "rule"}


@pytest.mark.slow
def test_a_grid_one_ulp_off_or_another_commit_reruns_nothing_and_says_so(
    base, rule_file, tmp_path, capsys
):
    """np.logspace rounds the last bit of a grid differently by CPU: a folder made on
    another machine is still compared, not re-run; another commit is named, not re-run."""
    other = tmp_path / "other"
    shutil.copytree(base, other)
    record = json.loads((other / "meta.json").read_text())
    grid = record["fingerprint"]["grid"]
    grid["sgd"] = [float(np.nextafter(lr, 0.0)) for lr in grid["sgd"]]
    record["fingerprint"]["commit"] = "0" * 40
    (other / "meta.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    argv = ["run", "--optimizer", f"{rule_file}:rule", "--against", str(other), "--out"]
    assert main([*argv, str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "not re-run" in line and "the code differs (commit: " in line and "grid:" not in line
    against = json.loads((out / "meta.json").read_text())["against"]
    assert against["re_run"] == [] and list(against["differences"]) == ["commit"]


def test_a_fingerprint_difference_names_a_few_of_many_names():
    ours = {"grid": {f"rule{i}": [0.1, 1.0] for i in range(10)}, "seeds": 2}
    theirs = {"grid": {f"rule{i}": [0.2, 1.0] for i in range(10)}, "seeds": 2}
    found = meta.differences(ours, theirs)
    assert list(found) == ["grid"] and found["grid"].endswith(" and 7 more")
    assert found["grid"].count(" vs ") == meta.LISTED
    assert (
        meta.differences({"grid": {"a": [1e-05]}}, {"grid": {"a": [9.999999999999999e-06]}}) == {}
    )
    assert meta.differences({"seeds": 2}, {"seeds": 3}) == {"seeds": "2 vs 3"}


def test_partial_class_and_optax_factories_build_and_are_named():
    class Stepper:
        def __init__(self, learning_rate):
            self.rule = sgd(learning_rate)
            self.init, self.update = self.rule.init, self.rule.update

    assert resolve_optimizer(functools.partial(sgd, momentum=0.9))[0] == "sgd"
    assert resolve_optimizer(Stepper)[0] == "Stepper"
    assert plugins.add_optimizer("optax:adam") == "optax_adam"
    assert plugins.optimizer("optax_adam").learning_rates == LR_GRID
    for optimizer in (functools.partial(sgd, momentum=0.9), Stepper, "optax_adam"):
        result = run_sweep("rosenbrock_2d", optimizer, learning_rates=[1e-3], seeds=1, steps=3)
        assert result.losses.shape == (1, 4)


def test_a_space_file_gives_the_search_space_and_capabilities(tmp_path):
    (tmp_path / "heavy.py").write_text(
        "from optimizers import sgd\n\n"
        "def rule(learning_rate, momentum=0.5):\n"
        "    return sgd(learning_rate, momentum=momentum)\n"
    )
    space = tmp_path / "space.toml"
    space.write_text(
        textwrap.dedent(
            """
            max_dim = 5
            needs_loss = false
            [learning_rate]
            low = 1e-3
            high = 1e-1
            [momentum]
            low = 0.5
            high = 0.99
            scale = "one_minus_log"
            """
        )
    )
    name = plugins.add_optimizer(f"heavy={tmp_path / 'heavy.py'}:rule", {"heavy": space})
    spec = plugins.optimizer(name)
    assert len(spec.learning_rates) == 9
    assert spec.learning_rates[0] == pytest.approx(1e-3) and spec.learning_rates[
        -1
    ] == pytest.approx(0.1)
    assert spec.search_space["momentum"].scale == "one_minus_log"
    assert spec.max_dim == 5 and spec.needs_loss is False
    assert spec.skip_reason(False, 10, 1) is not None and spec.skip_reason(False, 2, 1) is None
    space.write_text("max_dim = 'five'\n")
    with pytest.raises(plugins.PluginError, match="max_dim"):
        plugins.add_optimizer(f"heavy2={tmp_path / 'heavy.py'}:rule", {None: space})


def test_a_module_declaration_is_used_before_any_default(tmp_path):
    (tmp_path / "declared.py").write_text(
        RULE + "\nfrom optimizers import OptimizerSpec\n"
        "REGISTRY = {'rule': OptimizerSpec(rule, (0.01, 0.1), deterministic_only=True)}\n"
    )
    name = plugins.add_optimizer(f"{tmp_path / 'declared.py'}:rule")
    assert name == "rule"
    assert plugins.optimizer(name).learning_rates == (0.01, 0.1)
    assert plugins.optimizer(name).deterministic_only


def test_entry_points_register_optimizers_and_problems(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_package.py").write_text(
        RULE + "\nfrom dataclasses import replace\nfrom problems import PROBLEMS\n\n"
        "def small_rosenbrock():\n"
        "    return replace(PROBLEMS['rosenbrock_2d'], name='small_rosenbrock', steps=5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        metadata.EntryPoint("ep_rule", "my_package:rule", "optbench.optimizers"),
        metadata.EntryPoint("small_rosenbrock", "my_package:small_rosenbrock", "optbench.problems"),
    ]
    monkeypatch.setattr(
        plugins.metadata, "entry_points", lambda group: [p for p in points if p.group == group]
    )
    assert plugins.optimizer("ep_rule").learning_rates == LR_GRID
    assert plugins.problem("small_rosenbrock").steps == 5
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "entry point ep_rule (my_package:rule)" in listed
    assert "entry point small_rosenbrock" in listed
    result = run_sweep("small_rosenbrock", "ep_rule", learning_rates=[1e-3], seeds=1)
    assert result.losses.shape[1] == 6


@pytest.mark.slow
def test_a_problem_from_a_file_runs_beside_an_optimizer_from_a_file(
    rule_file, tmp_path, capsys, monkeypatch
):
    problem_file = tmp_path / "my_problem.py"
    problem_file.write_text(
        "from dataclasses import replace\nfrom problems import PROBLEMS\n\n"
        "def bowl():\n    return replace(PROBLEMS['quadratic_20d_cond1e1'], name='bowl')\n"
    )
    out = tmp_path / "out"
    argv = ["run", "--problem", f"{problem_file}:bowl", "--optimizer", f"{rule_file}:rule"]
    assert main([*argv, "--steps", "10", "--seeds", "1", "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv.gz")
    assert set(runs["problem"]) == {"bowl"} and set(runs["optimizer"]) == {"rule"}
    captured = capsys.readouterr()
    assert "  1. rule (score" in captured.out and "leaves out" not in captured.err
    # The folder carries the problem's facts: a process that does not know it still
    # places it in the data profile.
    facts = pd.read_csv(out / "problems.csv").set_index("problem")
    assert facts.loc["bowl", "dim"] == 20 and "convex" in facts.loc["bowl", "tags"].split()
    monkeypatch.setattr(plugins, "_problems", {})
    monkeypatch.setattr(plugins, "_optimizers", {})
    assert main(["plot", str(out)]) == 0
    assert "leaves out" not in capsys.readouterr().err


@pytest.mark.slow
def test_merge_combines_matching_folders_and_refuses_others(base, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["run", *SMALL, "--optimizers", "momentum", "--out", str(other)]) == 0
    out = tmp_path / "merged"
    assert main(["merge", str(base), str(other), "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "summary.csv")["optimizer"]) == {"sgd", "adam", "momentum"}
    assert _rows(out, "runs", {"sgd", "adam"}) == _rows(base, "runs", {"sgd", "adam"})
    capsys.readouterr()

    assert main(["merge", str(base), str(out), "--out", str(tmp_path / "twice")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "both hold the pair" in error
    assert "x adam" in error or "x sgd" in error

    shorter = tmp_path / "shorter"
    shutil.copytree(other, shorter)
    record = json.loads((shorter / "meta.json").read_text())
    record["fingerprint"]["steps"]["rosenbrock_2d"] = 10
    (shorter / "meta.json").write_text(json.dumps(record))
    assert main(["merge", str(base), str(shorter), "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "steps: rosenbrock_2d 20 vs 10" in error
    assert not (tmp_path / "bad").exists() and not (tmp_path / "twice").exists()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("missing.py:rule", "no such file"),
        ("my_rule.py:nope", "no attribute 'nope'"),
        ("my_rule.py:sgd", "names a built-in optimizer"),
        ("my_rule.py:NUMBER", "not callable"),
        ("my_rule.py:broken", "not an optimizer"),
        ("no_such_module_here:rule", "cannot import"),
        ("no colon", "expected [NAME=]PATH.py:FACTORY"),
    ],
)
def test_bad_input_exits_2_with_one_line(target, expected, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_rule.py").write_text(
        RULE + "\nNUMBER = 3\n\ndef broken(learning_rate):\n    return 3\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--optimizer", target, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and expected in error
    assert not (tmp_path / "out").exists()


def test_against_a_folder_that_is_not_one_exits_2(rule_file, tmp_path, capsys):
    argv = ["run", "--optimizer", f"{rule_file}:rule", "--against", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "never changes the folder" in capsys.readouterr().err


def test_a_problem_named_by_a_factory_must_build_a_problem(tmp_path):
    (tmp_path / "p.py").write_text("def nothing():\n    return None\n")
    with pytest.raises(plugins.PluginError, match="not a Problem"):
        plugins.add_problem(f"{tmp_path / 'p.py'}:nothing")


def test_a_space_sweeping_an_argument_the_factory_lacks_exits_2_with_one_line(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "my_rule.py").write_text(RULE)
    (tmp_path / "space.toml").write_text("[momentum]\nlow = 0.5\nhigh = 0.9\n")
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--optimizer", "my_rule.py:rule", "--space", "space.toml"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert "momentum is not an argument of rule's factory; it takes: learning_rate" in error


def test_defaults_without_a_default_learning_rate_says_where_to_declare_one(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "my_rule.py").write_text(RULE)  # rule(learning_rate): no default
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--optimizer", "my_rule.py:rule", "--protocol", "defaults"]
    argv += ["--problems", "rosenbrock_2d", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "declare default_learning_rate = ..." in error, error
    (tmp_path / "space.toml").write_text("default_learning_rate = 0.01\n")
    assert plugins.space_from_toml(tmp_path / "space.toml")["default_learning_rate"] == 0.01


def test_the_baselines_kept_are_named_in_a_line_short_enough_to_read():
    from bench import combine

    assert combine._names_text(["a", "b"]) == "a, b"
    assert combine._names_text([f"rule{i}" for i in range(102)]) == (
        "rule0, rule1, rule2 and 99 more"
    )
