"""`python -m bench`: bad input exits 2 with one line naming the valid choices."""

import subprocess
import sys

import pytest

from bench.cli import main
from optimizers import OPTIMIZERS
from problems import PROBLEMS


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--problems", "nope"], ["nope", "choose from", "rosenbrock_2d"]),
        (["run", "--optimizers", "sgd", "nope"], ["nope", "choose from", "adam"]),
        (["run", "--dtype", "float16"], ["--dtype", "float32", "float64"]),
        (["run", "--seeds", "0"], ["--seeds", ">= 1"]),
        (["run", "--seeds", "two"], ["--seeds", "invalid int"]),
        (["run", "--steps", "0"], ["--steps", ">= 1"]),
        (["run", "--grid", "0.1", "-1"], ["--grid", "positive"]),
        (["run", "--cv", "1"], ["--cv", ">= 2"]),
        (["run", "--jobs", "0"], ["--jobs", ">= 1"]),
        (["run", "--bogus"], ["unrecognized arguments", "--bogus"]),
        (["frobnicate"], ["invalid choice", "run", "plot", "list"]),
        ([], ["required"]),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, expected, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert all(word in lines[0] for word in expected), lines[0]
    assert captured.out == ""


def test_plot_of_a_folder_without_results_exits_2(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "runs.csv" in capsys.readouterr().err


def test_run_refuses_to_replace_a_folder_that_is_not_a_results_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    argv = ["run", "--problems", "rosenbrock_2d", "--optimizers", "sgd", "--steps", "2"]
    assert main([*argv, "--seeds", "1", "--grid", "0.01", "--out", str(tmp_path)]) == 2
    assert "not replacing" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_list_names_every_problem_and_optimizer(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in [*PROBLEMS, *OPTIMIZERS])


@pytest.mark.slow
def test_the_module_entry_point_exits_2_without_a_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--optimizers", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "choose from" in done.stderr


def test_the_compilation_cache_is_the_repositorys_whatever_the_working_directory(
    tmp_path, monkeypatch
):
    # `.cache/jax` was created in whatever directory the user ran from.
    from pathlib import Path

    from bench.cli import cache_dir

    monkeypatch.delenv("OPTBENCH_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    repository = Path(__file__).resolve().parent.parent
    assert cache_dir() == repository / ".cache"
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
