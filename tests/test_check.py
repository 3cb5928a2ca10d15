"""bench.check: each check passes on a sound problem and fails, alone, on one that breaks it."""

import dataclasses
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import check, plugins
from bench.cli import main
from problems import PROBLEMS, Problem

GOOD = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp

    from problems import Problem


    def sample_batch(data, key):
        return {"shift": data["shift"] + 0.01 * jax.random.normal(key, (3,))}


    def noisy_bowl():
        return Problem(
            name="noisy_bowl",
            description="a stochastic 3-D bowl",
            tags=frozenset({"convex", "stochastic"}),
            dim=3,
            init=lambda key: jax.random.normal(key, (3,)),
            loss=lambda x, batch: jnp.sum((x - batch["shift"]) ** 2),
            data=lambda: {"shift": jnp.ones(3)},
            sample_batch=sample_batch,
            f_star=0.0,
            target=1e-3,
            steps=200,
        )


    BOWL = noisy_bowl()
    NOT_A_PROBLEM = 3
    """
)


def bowl(**changes) -> Problem:
    """A deterministic 3-D bowl, f* = 0, with `changes` made to it."""
    problem = Problem(
        name="bowl",
        description="a 3-D bowl",
        tags=frozenset({"convex"}),
        dim=3,
        init=lambda key: jax.random.normal(key, (3,)),
        loss=lambda x, data: jnp.sum(x**2),
        f_star=0.0,
        target=1e-3,
        steps=100,
    )
    return dataclasses.replace(problem, **changes)


def failed(results) -> list[str]:
    return [r.name for r in results if not r.passed]


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_problem.py"
    path.write_text(GOOD)
    return path


def test_a_sound_problem_passes_every_check_one_line_each(user_file, capsys):
    assert check.check_command(f"{user_file}:noisy_bowl") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"PASS {name}" for name in check.FULL]


def test_the_quick_subset_makes_three_checks():
    results = check.check_problem(bowl(), quick=True)
    assert [r.name for r in results] == ["dim", "finite loss", "determinism"]
    assert all(r.passed for r in results)


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"dim": 4}, "dim"),
        ({"loss": lambda x, data: jnp.sum(x**2) + jnp.log(0.0)}, "finite loss"),
        ({"loss": lambda x, data: x**2}, "finite loss"),
        ({"init": lambda key: jnp.asarray(np.random.default_rng().normal(size=3))}, "determinism"),
        (
            {
                "tags": frozenset({"convex", "stochastic"}),
                "sample_batch": lambda data, key: np.random.default_rng().normal(size=3),
            },
            "determinism",
        ),
    ],
)
def test_a_broken_fact_fails_its_quick_check(changes, name):
    results = check.check_problem(bowl(**changes), quick=True)
    assert name in failed(results)
    assert all("\n" not in r.message for r in results)


@pytest.mark.slow
def test_a_wrong_gradient_fails_the_gradient_check_alone():
    def loss(x, data):  # jax.grad sees only half of the cross term
        return jnp.sum(x**2) + x[0] * jax.lax.stop_gradient(x[1]) + x[1] * x[0]

    results = check.check_problem(bowl(loss=loss, f_star=-10.0))
    assert failed(results) == ["gradient"]
    assert "coordinate" in results[3].message


@jax.custom_vjp
def _off_by_2_percent(x):
    return x


_off_by_2_percent.defvjp(lambda x: (x, None), lambda _, g: (1.02 * g,))


@pytest.mark.parametrize("wrong", [False, True])
def test_a_leaf_with_a_tiny_gradient_is_checked_at_its_own_scale(wrong):
    """Like the first layers of a deep sigmoid network: gradients 1e-6 of the others."""

    def loss(params, data):
        inner = _off_by_2_percent(params["inner"]) if wrong else params["inner"]
        return jnp.sum(params["outer"] ** 2) + 1e-6 * jnp.sum(jnp.sin(inner))

    params = {"inner": jnp.linspace(0.1, 1.0, 40), "outer": jnp.linspace(-1.0, 1.0, 40)}
    problem = bowl(dim=80, init=lambda key: params, loss=loss)
    with jax.enable_x64(True):
        ratios = dict(check.gradient_errors(problem, params, None, jax.random.PRNGKey(0)))
    assert (ratios["the gradient of leaf ['inner']"] > 1) == wrong
    assert max(v for k, v in ratios.items() if k != "the gradient of leaf ['inner']") <= 1


def test_the_registry_passes_the_gradient_check():
    problem = PROBLEMS["rosenbrock_2d"]
    with jax.enable_x64(True):
        errors = check.gradient_errors(
            problem, problem.init(jax.random.PRNGKey(0)), problem.data(), jax.random.PRNGKey(0)
        )
    assert max(ratio for _, ratio in errors) <= 1e-3


def test_an_f_star_above_the_minimum_fails_the_f_star_check():
    results = check.check_problem(bowl(f_star=10.0, target=1.0))
    assert failed(results) == ["f_star"]
    assert "below f_star=10" in results[-1].message


@pytest.mark.slow
def test_an_f_star_a_short_small_step_run_never_reaches_still_fails_the_check():
    # A sphere declared f* = 0.5 (true 0) from a start at loss about 27 passed: 100 steps
    # of adam and sgd at lr 1e-3 stayed far above 0.5. L-BFGS and the tuned grid reach 0.
    sphere = bowl(
        init=lambda key: 3.0 * jax.random.normal(key, (3,)), f_star=0.5, target=1e-3, steps=1000
    )
    results = check.check_problem(sphere)
    assert failed(results) == ["f_star"]
    assert "from the start point, below f_star=0.5" in results[-1].message


def test_every_check_quotes_the_start_point_the_runs_start_from():
    # The finite-loss line quoted f at init(PRNGKey(0)) while the runs started at the
    # lane's own start: the same point now, so the two agree.
    problem = bowl()
    start = problem.init(check.start_key(check.SEEDS[0]))
    results = {r.name: r.message for r in check.check_problem(problem)}
    assert f"{float(problem.loss(start, None)):.6g} on the full data" in results["finite loss"]
    sweep = check.run_sweep(problem, "sgd", [1e-3], [check.SEEDS[0]], 1)
    assert sweep.losses[0, 0] == pytest.approx(float(problem.loss(start, None)), rel=1e-6)


def test_targets_load_from_a_file_or_a_module(user_file):
    assert plugins.load_problem(f"{user_file}:BOWL")[0].name == "noisy_bowl"
    assert plugins.load_problem(f"mine={user_file}:noisy_bowl")[0].name == "mine"
    assert plugins.load_problem("problems.rosenbrock:rosenbrock")[0].name == "rosenbrock_2d"


@pytest.mark.parametrize(
    "target, message",
    [
        ("{dir}/absent.py:f", "no such file"),
        ("{file}:absent", "has no attribute 'absent'"),
        ("{file}:NOT_A_PROBLEM", "int is neither a Problem nor a factory"),
        ("no_such_package.module:f", "no_such_package.module: cannot import"),
        ("{file}", "expected \\[NAME=\\]PATH.py:FACTORY"),
    ],
)
def test_a_target_that_cannot_be_loaded_is_a_usage_error(user_file, target, message):
    target = target.format(dir=user_file.parent, file=user_file)
    with pytest.raises(ValueError, match=message):
        check.check_command(target)


WRONG_GRADIENT = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp

    from problems import Problem


    @jax.custom_jvp
    def bowl_loss(x):
        return jnp.sum(x**2)


    # A deliberately wrong derivative: 3x where the loss's is 2x.
    bowl_loss.defjvp(lambda primals, tangents: (bowl_loss(*primals), 3 * primals[0] @ tangents[0]))


    def wrong():
        return Problem(
            name="wrong_bowl",
            description="a bowl whose gradient is 1.5x too large",
            tags=frozenset({"convex"}),
            dim=3,
            init=lambda key: jax.random.normal(key, (3,)),
            loss=lambda x, data: bowl_loss(x),
            f_star=0.0,
            target=1e-3,
            steps=100,
        )


    def bad_dim():
        return Problem(
            name="bad_dim",
            description="declares 4 parameters, has 3",
            tags=frozenset({"convex"}),
            dim=4,
            init=lambda key: jax.random.normal(key, (3,)),
            loss=lambda x, data: jnp.sum(x**2),
            f_star=0.0,
            target=1e-3,
            steps=100,
        )
    """
)


@pytest.mark.slow
def test_bench_check_passes_a_correct_problem_and_fails_a_wrong_gradient(user_file, capsys):
    wrong = user_file.parent / "wrong.py"
    wrong.write_text(WRONG_GRADIENT)
    assert main(["check", f"{user_file}:noisy_bowl"]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert main(["check", f"{wrong}:wrong"]) == 1
    failures = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 1 and failures[0].startswith("FAIL gradient")
    assert main(["check", f"{wrong}:absent"]) == 2


def test_bench_run_refuses_a_problem_that_fails_the_quick_checks(user_file, tmp_path, capsys):
    wrong = user_file.parent / "wrong.py"
    wrong.write_text(WRONG_GRADIENT)
    status = main(
        [
            "run",
            "--problem",
            f"{wrong}:bad_dim",
            "--optimizers",
            "sgd",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error
    assert error.startswith("error: --problem bad_dim fails `bench check`: FAIL dim")
    assert not (tmp_path / "o").exists()
