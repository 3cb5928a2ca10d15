"""The sweep runner and the files `python -m bench run` writes."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bench import run_sweep
from bench.cli import main
from optimizers import adam, apply_updates
from problems import PROBLEMS


def one_run(problem, learning_rate, seed, steps):
    """The same run as a runner lane, as a Python loop over a jitted step: no vmap, no scan."""
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    params = jax.tree.map(lambda x: x.astype(jnp.float64), jax.jit(problem.init)(init_key))
    data = jax.tree.map(lambda x: x.astype(jnp.float64), problem.data())
    opt = adam(learning_rate)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(problem.loss)(params, data)
        updates, state = opt.update(grads, state, params)
        return value, apply_updates(params, updates), state

    state, losses = opt.init(params), []
    for _ in range(steps):
        value, params, state = step(params, state)
        losses.append(value)
    losses.append(problem.loss(params, data))
    return np.array(losses)


def test_vmapped_lanes_equal_runs_done_one_by_one():
    problem = PROBLEMS["logistic_synthetic_200x10"]
    result = run_sweep(problem, "adam", [0.01, 0.1], seeds=[0, 3], steps=20, dtype="float64")
    assert result.losses.shape == (4, 21)
    for lane in range(result.lanes):
        lr, seed = result.learning_rates[lane], int(result.seeds[lane])
        expected = one_run(problem, lr, seed, 20)
        np.testing.assert_allclose(result.losses[lane], expected, rtol=1e-12)


def test_user_factory_works_like_a_registry_name():
    by_name = run_sweep("rosenbrock_2d", "adam", [0.01], seeds=2, steps=10, dtype="float64")
    by_factory = run_sweep("rosenbrock_2d", adam, [0.01], seeds=2, steps=10, dtype="float64")
    np.testing.assert_array_equal(by_name.losses, by_factory.losses)
    assert by_factory.compile_seconds > 0 and by_factory.run_seconds > 0


def test_a_list_hyperparameter_is_swept_too():
    result = run_sweep("rosenbrock_2d", "adam", [0.01], seeds=1, steps=5, b1=[0.5, 0.9])
    np.testing.assert_array_equal(result.hparams["b1"], [0.5, 0.9])
    assert not np.array_equal(result.losses[0], result.losses[1])


def test_cli_writes_tidy_csv_and_a_png(tmp_path):
    out = tmp_path / "results"
    code = main(
        [
            "run",
            "--problems",
            "rosenbrock_2d",
            "--optimizers",
            "sgd",
            "adam",
            "--seeds",
            "2",
            "--steps",
            "30",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    runs = pd.read_csv(out / "runs.csv")
    curves = pd.read_csv(out / "curves.csv")
    assert {
        "problem",
        "optimizer",
        "learning_rate",
        "seed",
        "final_loss",
        "diverged",
        "steps_to_target",
        "compile_seconds",
        "run_seconds",
    } <= set(runs.columns)
    assert {"problem", "optimizer", "learning_rate", "seed", "step", "loss"} <= set(curves.columns)
    assert len(runs) == 2 * 2 * len(runs[runs.optimizer == "sgd"].learning_rate.unique())
    assert curves.groupby(["optimizer", "learning_rate", "seed"]).size().eq(31).all()
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["run", "--problems", "nope"], ["run", "--optimizers", "nope"]])
def test_cli_unknown_name_exits_2_with_the_choices(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "choose from" in err and "Traceback" not in err
