"""`python -m bench compare`: what counts as moved, the table it prints, its exit status."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.results.compare import Tolerance, compare_folders, moved_mask, parse_tolerances
from bench.sweep.records import runs_frame
from bench.sweep.runner import run_sweep
from optimizers import adam


def runs_table():
    """A small runs.csv as `python -m bench run` writes it: keys up to seed, then metrics."""
    return pd.DataFrame(
        {
            "problem": ["quad", "quad", "quad", "rosen"],
            "optimizer": ["sgd", "sgd", "adam", "adam"],
            "learning_rate": [0.01, 0.1, 0.01, 0.01],
            "seed": [0, 0, 0, 1],
            "final_loss": [1.5, 0.25, 3e-7, math.nan],
            "best_loss": [1.0, 0.25, 3e-7, 2.0],
            "steps_to_target": [-1, 12, 40, -1],
            "diverged": [False, False, False, True],
            "compile_seconds": [0.5, 0.5, 0.7, 0.7],
            "note": ["a", "b", "c", "d"],
        }
    )


def summary_table():
    return pd.DataFrame(
        {
            "problem": ["quad", "quad", "rosen"],
            "optimizer": ["sgd", "adam", "adam"],
            "learning_rate": [0.1, 0.01, 0.01],
            "median_final_suboptimality": [0.25, 3e-7, math.inf],
        }
    )


def write(folder, runs=None, summary=None):
    folder.mkdir()
    if runs is not None:
        runs.to_csv(folder / "runs.csv", index=False, float_format="%.10g")
    if summary is not None:
        summary.to_csv(folder / "summary.csv", index=False, float_format="%.10g")
    return str(folder)


def test_identical_folders_exit_0(tmp_path, capsys):
    base = write(tmp_path / "base", runs_table(), summary_table())
    new = write(tmp_path / "new", runs_table(), summary_table())
    assert main(["compare", base, new]) == 0
    assert "no metric moved" in capsys.readouterr().out


def test_a_moved_metric_exits_1_and_is_listed(tmp_path, capsys):
    runs = runs_table()
    runs.loc[1, "final_loss"] = 0.2500003  # 1.2e-6 relative: just over the 1e-6 default
    base = write(tmp_path / "base", runs_table())
    new = write(tmp_path / "new", runs)
    assert main(["compare", base, new]) == 1
    out = capsys.readouterr().out
    moved = [line for line in out.splitlines() if "final_loss" in line]
    assert len(moved) == 1
    assert moved[0].split()[:4] == ["runs", "quad", "sgd", "learning_rate=0.1,"]
    assert "0.25" in moved[0] and "0.2500003" in moved[0] and "+1.2e-06" in moved[0]
    assert "1 metric values moved in 1 (problem, optimizer) pairs" in out


def test_a_change_within_tolerance_is_not_a_regression(tmp_path):
    runs = runs_table()
    runs.loc[1, "final_loss"] = 0.2500002  # 8e-7 relative
    runs.loc[2, "final_loss"] = 3e-7 + 5e-13  # under the 1e-12 absolute floor
    assert main(["compare", write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)]) == 0


def test_rtol_option_loosens_all_metrics_or_one(tmp_path):
    runs = runs_table()
    runs.loc[0, "best_loss"] = 1.001
    base, new = write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)
    assert main(["compare", base, new]) == 1
    assert main(["compare", base, new, "--rtol", "1e-2"]) == 0
    assert main(["compare", base, new, "--rtol", "best_loss=1e-2"]) == 0
    assert main(["compare", base, new, "--rtol", "final_loss=1e-2"]) == 1


def test_timing_and_text_columns_are_ignored(tmp_path):
    runs = runs_table()
    runs["compile_seconds"] *= 3
    runs["note"] = "changed"
    assert main(["compare", write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)]) == 0


def test_nan_equals_nan_but_not_a_number(tmp_path):
    old = np.array([math.nan, math.nan, 1.0, math.inf, math.inf])
    new = np.array([math.nan, 1.0, math.nan, math.inf, -math.inf])
    moved = moved_mask(old, new, Tolerance(1e-6, 1e-12))
    np.testing.assert_array_equal(moved, [False, True, True, False, True])


def test_a_diverged_flag_flip_is_a_regression(tmp_path, capsys):
    runs = runs_table()
    runs.loc[0, "diverged"] = True
    base, new = write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)
    # Even tolerances that would swallow any number leave a flag flip a regression.
    assert main(["compare", base, new, "--rtol", "1e9", "--atol", "1e9"]) == 1
    assert "diverged" in capsys.readouterr().out


def test_steps_to_target_is_compared_exactly(tmp_path):
    runs = runs_table()
    runs.loc[1, "steps_to_target"] = 13
    assert main(["compare", write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)]) == 1


def test_summary_is_compared_when_both_have_it(tmp_path, capsys):
    summary = summary_table()
    summary.loc[1, "learning_rate"] = 0.1
    base = write(tmp_path / "b", runs_table(), summary_table())
    new = write(tmp_path / "n", runs_table(), summary)
    assert main(["compare", base, new]) == 1
    assert "summary  quad     adam" in capsys.readouterr().out


def test_added_and_removed_rows_are_unusable_input(tmp_path, capsys):
    runs = runs_table()
    runs.loc[3, "seed"] = 2
    assert main(["compare", write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs)]) == 2
    err = capsys.readouterr().err
    assert "do not cover the same rows" in err
    assert "only in BASE: problem=rosen, optimizer=adam, learning_rate=0.01, seed=1" in err
    assert "only in NEW: problem=rosen, optimizer=adam, learning_rate=0.01, seed=2" in err


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda runs: runs.drop(columns="best_loss"), "only in BASE ['best_loss']"),
        (lambda runs: runs.drop(columns="seed"), "has no 'seed' column"),
        (lambda runs: runs.rename(columns={"learning_rate": "lr"}), "key columns differ"),
        (lambda runs: pd.concat([runs, runs.tail(1)]), "duplicate rows"),
    ],
)
def test_mismatched_schema_is_unusable_input(tmp_path, capsys, damage, message):
    base = write(tmp_path / "b", runs_table())
    new = write(tmp_path / "n", damage(runs_table()))
    assert main(["compare", base, new]) == 2
    assert message in capsys.readouterr().err


def test_missing_files_are_unusable_input(tmp_path, capsys):
    base = write(tmp_path / "b", runs_table(), summary_table())
    assert main(["compare", base, str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["compare", base, write(tmp_path / "empty")]) == 2
    assert "has no runs.csv" in capsys.readouterr().err
    assert main(["compare", base, write(tmp_path / "n", runs_table())]) == 2
    assert "summary.csv exists in" in capsys.readouterr().err


def test_bad_tolerance_is_a_usage_error(tmp_path, capsys):
    base = write(tmp_path / "b", runs_table())
    assert main(["compare", base, base, "--rtol", "loose"]) == 2
    assert "--rtol 'loose'" in capsys.readouterr().err
    assert main(["compare", base, base, "--atol", "-1"]) == 2


def test_per_metric_tolerance_falls_back_to_the_global_one():
    overrides = parse_tolerances(["1e-3", "final_loss=1e-1"], ["best_loss=1e-5"])
    assert overrides["*"] == Tolerance(1e-3, 1e-12)
    assert overrides["final_loss"] == Tolerance(1e-1, 1e-12)
    assert overrides["best_loss"] == Tolerance(1e-3, 1e-5)


def test_compare_folders_returns_every_moved_value(tmp_path):
    runs = runs_table()
    runs["best_loss"] *= 2
    moves = compare_folders(write(tmp_path / "b", runs_table()), write(tmp_path / "n", runs))
    assert [(m.metric, m.old, m.new) for m in moves] == [
        ("best_loss", 3e-7, 6e-7),  # rows in key order: quad adam comes first
        ("best_loss", 1.0, 2.0),
        ("best_loss", 0.25, 0.5),
        ("best_loss", 2.0, 4.0),
    ]
    assert moves[0].relative_change == pytest.approx(1.0)


def sweep_folder(folder, factory):
    """runs.csv of a short float64 Rosenbrock sweep with `factory`, labelled "adam"."""
    result = run_sweep("rosenbrock_2d", factory, [1e-2, 1e-1], seeds=2, steps=25, dtype="float64")
    return write(folder, runs_frame(result).assign(optimizer="adam"))


def test_identical_runs_pass_and_a_perturbed_optimizer_fails(tmp_path, capsys):
    base = sweep_folder(tmp_path / "base", adam)
    assert main(["compare", base, sweep_folder(tmp_path / "again", adam)]) == 0
    capsys.readouterr()

    def perturbed_adam(learning_rate):
        return adam(learning_rate, b1=0.9 + 1e-3)  # a tenth of a percent off the default

    assert main(["compare", base, sweep_folder(tmp_path / "perturbed", perturbed_adam)]) == 1
    out = capsys.readouterr().out
    moved = {line.split()[5] for line in out.splitlines() if line.startswith("runs ")}
    assert {"final_loss", "final_suboptimality", "final_grad_norm"} <= moved
    assert "(problem, optimizer) pairs" in out
