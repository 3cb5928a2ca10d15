"""The README's how-tos run: "Add an optimizer" and "Add a problem", as written.

Each section's ```python block (its first line names its file) is written into a
folder and loaded as `bench run --optimizer` and `--problem` load it (bench.plugins);
the rule is swept on a registry problem and on the new problem, and the problem goes
through `bench check`. The ```sh blocks are not run, but must name those files.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from bench import check, plugins
from bench.report import page
from bench.sweep.runner import run_sweep

README = Path(__file__).resolve().parent.parent / "README.md"
SECTIONS = {"Add an optimizer": "my_rule.py", "Add a problem": "my_problem.py"}


def section(heading: str) -> str:
    text = README.read_text()
    assert text.count(f"\n## {heading}\n") == 1, heading
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def blocks(heading: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(heading), re.S)


@pytest.fixture
def howtos(tmp_path, monkeypatch):
    """The how-tos' files in a folder of their own, the working directory (as the shell
    commands name them), with nothing added to bench.plugins beyond the test."""
    for heading, file in SECTIONS.items():
        (code,) = blocks(heading, "python")
        assert code.splitlines()[0] == f"# {file}"
        (tmp_path / file).write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plugins, "_optimizers", {})
    monkeypatch.setattr(plugins, "_problems", {})
    return tmp_path


def test_the_shell_commands_name_the_examples():
    for heading, file in SECTIONS.items():
        commands = "\n".join(blocks(heading, "sh"))
        assert f"{file}:{Path(file).stem}" in commands, heading
        assert "python -m bench run" in commands
    assert "python -m bench check my_problem.py:my_problem" in section("Add a problem")


def _improves(result) -> bool:
    losses = result.losses
    return bool(np.isfinite(losses).all() and (losses[:, -1] < losses[:, 0]).all())


def test_the_new_optimizer_runs_on_a_registry_problem_and_the_new_problem(howtos):
    name = plugins.add_optimizer("my_rule.py:my_rule")
    spec = plugins.optimizer(name)
    assert name == "my_rule" and spec.factory.__doc__ and spec.factory.__name__ == name
    assert page.family(name) == "my_rule"
    space = spec.space()
    assert set(space) == {"learning_rate", "b0"}
    assert space["learning_rate"].contains(spec.defaults()["learning_rate"])
    assert space["b0"].contains(0.1)  # the factory's default
    problem = plugins.problem(plugins.add_problem("my_problem.py:my_problem"))
    trials = [{"learning_rate": 0.3, "b0": 0.01}, {"learning_rate": 1.0, "b0": 0.5}]
    for on in ["quadratic_20d_cond1e1", problem]:
        assert _improves(run_sweep(on, spec, seeds=[0], steps=30, trials=trials))


def test_the_new_problem_passes_bench_check_and_runs(howtos, capsys):
    assert check.check_command("my_problem.py:my_problem") == 0
    assert capsys.readouterr().out.count("PASS") == len(check.FULL)
    problem = plugins.problem(plugins.add_problem("my_problem.py:my_problem"))
    assert _improves(run_sweep(problem, "adam", [0.1], seeds=[0], steps=30))
    # f_star is the loss at x_star, in float64.
    data = {k: v.astype(np.float64) for k, v in problem.data().items()}
    assert float(problem.loss(problem.x_star, data)) == pytest.approx(problem.f_star, rel=1e-12)
