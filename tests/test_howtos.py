"""The documentation's code runs as written: the README's drop-in example, and the
how-tos docs/adding-an-optimizer.md and docs/adding-a-problem.md.

Each how-to's ```python block (its first line names its file) is written into a
folder and loaded as `bench run --optimizer` and `--problem` load it (bench.plugins);
the rule is swept on a registry problem and on the new problem, and the problem goes
through `bench check`. The ```sh blocks are not run, but must name those files.
"""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

from bench import check, known, plugins
from bench.sweep.runner import run_sweep

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DROP_IN = "Use the optimizers in your own code"
PAGES = {"adding-an-optimizer.md": "my_rule.py", "adding-a-problem.md": "my_problem.py"}


def section(heading: str) -> str:
    """The README's section under `## heading`, up to the next `## `."""
    text = README.read_text()
    assert text.count(f"\n## {heading}\n") == 1, heading
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def page_text(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


@pytest.mark.slow
def test_the_readme_drop_in_example_runs_and_lowers_the_loss():
    """The ```python block of the README's drop-in section, executed as written in a fresh
    namespace; its setup (the lines before the training loop) executed alone gives the
    loss at the start."""
    (code,) = blocks(section(DROP_IN), "python")
    assert "from optimizers import adam" in code and "optax.chain" in code
    setup = code.split("\nfor ", 1)[0]
    assert setup != code, "the example has a training loop"
    start, end = {}, {}
    exec(compile(setup, "README.md", "exec"), start)
    exec(compile(code, "README.md", "exec"), end)
    before = float(start["loss"](start["params"], start["x"], start["y"]))
    after = float(end["loss"](end["params"], end["x"], end["y"]))
    # 100 Adam steps take it from 9 to about 2e-5: half is a bound only a broken step misses.
    assert np.isfinite(after) and after < 0.5 * before, (before, after)
    # the parameters kept their structure and dtypes through optax.apply_updates
    dtypes = {
        name: jax.tree.map(lambda leaf: leaf.dtype, ns["params"])
        for name, ns in (("start", start), ("end", end))
    }
    assert dtypes["end"] == dtypes["start"]


@pytest.fixture
def howtos(tmp_path, monkeypatch):
    """The how-tos' files in a folder of their own, the working directory (as the shell
    commands name them), with nothing added to bench.plugins beyond the test."""
    for name, file in PAGES.items():
        (code,) = blocks(page_text(name), "python")
        assert code.splitlines()[0] == f"# {file}"
        (tmp_path / file).write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plugins, "_optimizers", {})
    monkeypatch.setattr(plugins, "_problems", {})
    return tmp_path


def test_the_shell_commands_name_the_examples():
    for name, file in PAGES.items():
        commands = "\n".join(blocks(page_text(name), "sh"))
        assert f"{file}:{Path(file).stem}" in commands, name
        assert "python -m bench run" in commands
    assert "python -m bench check my_problem.py:my_problem" in page_text("adding-a-problem.md")


def test_every_page_spells_the_examples_by_the_factories_their_files_define():
    """`my_rule.py:rule` failed: the file defines `my_rule`. Every mention of an example
    file with a factory, in the README and every page of docs/, names that factory."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    spelled = {
        (page.name, match.group(0))
        for page in pages
        for match in re.finditer(r"\b(my_rule|my_problem)\.py:(\w+)", page.read_text())
        if match.group(1) != match.group(2)
    }
    assert not spelled, spelled


def test_the_space_file_of_the_optimizer_page_loads_as_written(tmp_path):
    (toml,) = blocks(page_text("adding-an-optimizer.md"), "toml")
    path = tmp_path / "my_rule.toml"
    path.write_text(toml)
    fields = plugins.space_from_toml(path)
    assert fields["default_learning_rate"] == 0.1 and fields["needs_loss"] is False
    assert fields["learning_rates"] == (0.01, 0.1, 1.0, 10.0)


def _improves(result) -> bool:
    losses = result.losses
    return bool(np.isfinite(losses).all() and (losses[:, -1] < losses[:, 0]).all())


def test_the_new_optimizer_runs_on_a_registry_problem_and_the_new_problem(howtos):
    name = plugins.add_optimizer("my_rule.py:my_rule")
    spec = plugins.optimizer(name)
    assert name == "my_rule" and spec.factory.__doc__ and spec.factory.__name__ == name
    assert known.family(name) == "my_rule"
    space = spec.space()
    assert set(space) == {"learning_rate", "b0"}
    assert space["learning_rate"].contains(spec.defaults()["learning_rate"])
    assert space["b0"].contains(0.1)  # the factory's default
    problem = plugins.problem(plugins.add_problem("my_problem.py:my_problem"))
    trials = [{"learning_rate": 0.3, "b0": 0.01}, {"learning_rate": 1.0, "b0": 0.5}]
    for on in ["quadratic_20d_cond1e1", problem]:
        assert _improves(run_sweep(on, spec, seeds=[0], steps=30, trials=trials))


@pytest.mark.slow
def test_the_new_problem_passes_bench_check_and_runs(howtos, capsys):
    assert check.check_command("my_problem.py:my_problem") == 0
    assert capsys.readouterr().out.count("PASS") == len(check.FULL)
    problem = plugins.problem(plugins.add_problem("my_problem.py:my_problem"))
    assert _improves(run_sweep(problem, "adam", [0.1], seeds=[0], steps=30))
    # f_star is the loss at x_star, in float64.
    data = {k: v.astype(np.float64) for k, v in problem.data().items()}
    assert float(problem.loss(problem.x_star, data)) == pytest.approx(problem.f_star, rel=1e-12)


def test_every_relative_link_of_the_documentation_names_a_file_that_exists():
    """README, CONTRIBUTING, CHANGELOG and docs/ link results files and each other; a
    moved or renamed file must not leave a dead link behind."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
    pages += sorted((ROOT / "docs").glob("*.md"))
    dead, seen = [], 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            seen += 1
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert seen > 20 and dead == []
