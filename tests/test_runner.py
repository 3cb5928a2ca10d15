"""The sweep runner and the files `python -m bench run` writes."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bench import run_sweep
from bench.cli import main
from bench.sweep import program
from bench.sweep.lane import fold_indices
from bench.sweep.program import compiler_options
from optimizers import adam, apply_updates
from problems import PROBLEMS


def compiled(fn, *args, level):
    """`fn` compiled with the runner's compiler options at `level`, so both round floats
    alike."""
    return jax.jit(fn).lower(*args).compile(compiler_options(level))


def one_run(problem, learning_rate, seed, steps, level):
    """The same run as a runner lane, as a Python loop over a jitted step: no vmap, no scan."""
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    params = compiled(problem.init, init_key, level=level)(init_key)
    params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
    data = jax.tree.map(lambda x: x.astype(jnp.float64), problem.data())
    opt = adam(learning_rate)

    def step(params, state):
        value, grads = jax.value_and_grad(problem.loss)(params, data)
        updates, state = opt.update(grads, state, params)
        return value, apply_updates(params, updates), state

    state, losses = opt.init(params), []
    step = compiled(step, params, state, level=level)
    for _ in range(steps):
        value, params, state = step(params, state)
        losses.append(value)
    losses.append(problem.loss(params, data))
    return np.array(losses)


def test_vmapped_lanes_equal_runs_done_one_by_one():
    problem = PROBLEMS["logistic_synthetic_200x10"]
    result = run_sweep(problem, "adam", [0.01, 0.1], seeds=[0, 3], steps=20, dtype="float64")
    assert result.losses.shape == (4, 21) and result.level == 0  # a brief program
    for lane in range(result.lanes):
        lr, seed = result.learning_rates[lane], int(result.seeds[lane])
        expected = one_run(problem, lr, seed, 20, result.level)
        np.testing.assert_allclose(result.losses[lane], expected, rtol=1e-12)


def test_user_factory_works_like_a_registry_name():
    by_name = run_sweep("rosenbrock_2d", "adam", [0.01], seeds=2, steps=10, dtype="float64")
    by_factory = run_sweep("rosenbrock_2d", adam, [0.01], seeds=2, steps=10, dtype="float64")
    np.testing.assert_array_equal(by_name.losses, by_factory.losses)
    assert by_factory.compile_seconds > 0 and by_factory.run_seconds > 0


def test_optimize_compiles_the_same_sweep_at_xla_default_level():
    """optimize=True changes how XLA compiles, not what the sweep computes."""
    problem = PROBLEMS["logistic_synthetic_200x10"]
    common = dict(learning_rates=[0.01, 0.1], seeds=2, steps=30, dtype="float64")
    level0 = run_sweep(problem, "adam", **common)
    optimized = run_sweep(problem, "adam", optimize=True, **common)
    # The initial point is drawn in float32 (then cast): the two compilations may round
    # its last bit differently (float32's unit roundoff is 6e-8); the steps run in float64.
    np.testing.assert_allclose(optimized.losses, level0.losses, rtol=1e-7)
    np.testing.assert_allclose(optimized.grad_norms, level0.grad_norms, rtol=1e-7)


def test_the_fast_compile_level_follows_the_programs_expected_run_time(monkeypatch):
    """A brief program is compiled at LLVM level 0, one expected to run for longer than
    LEVEL0_BELOW_SECONDS at level 1; the estimate scales with the steps."""

    def matmul(a):
        return a @ a

    lowered = jax.jit(matmul).lower(jnp.ones((200, 200)))  # 1.6e7 flops a step
    per_step = program.expected_seconds(lowered, 0)
    assert per_step == pytest.approx(2 * 200**3 / program.LEVEL0_FLOPS, rel=0.1)
    assert program.expected_seconds(lowered, 99) == pytest.approx(100 * per_step)
    assert program.fast_level(lowered, 10) == 0 and program.fast_level(lowered, 10_000) == 1

    common = dict(learning_rates=[0.01, 0.1], seeds=2, steps=30, dtype="float64")
    brief = run_sweep("rosenbrock_2d", "adam", **common)
    assert (brief.level, brief.optimized) == (0, False)
    monkeypatch.setattr(program, "LEVEL0_BELOW_SECONDS", 0.0)
    monkeypatch.setattr(program, "_PROGRAMS", collections.OrderedDict())  # compile anew
    longer = run_sweep("rosenbrock_2d", "adam", **common)
    assert (longer.level, longer.optimized) == (1, False)
    np.testing.assert_allclose(longer.losses, brief.losses, rtol=1e-12)
    optimized = run_sweep("rosenbrock_2d", "adam", optimize=True, **common)
    assert (optimized.level, optimized.optimized) == (None, True)


def test_a_list_hyperparameter_is_swept_too():
    result = run_sweep("rosenbrock_2d", "adam", [0.01], seeds=1, steps=5, b1=[0.5, 0.9])
    np.testing.assert_array_equal(result.hparams["b1"], [0.5, 0.9])
    assert not np.array_equal(result.losses[0], result.losses[1])


@pytest.mark.slow
def test_cli_writes_tidy_csv_and_a_png(tmp_path):
    out = tmp_path / "results"
    argv = ["run", "--problems", "rosenbrock_2d", "--optimizers", "sgd", "adam"]
    argv += ["--seeds", "2", "--steps", "30", "--grid", "1e-3", "1e-2", "--out", str(out)]
    assert main(argv) == 0
    runs = pd.read_csv(out / "runs.csv.gz")
    curves = pd.read_csv(out / "curves.csv.gz")
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
    assert {"problem", "optimizer", "learning_rate", "step", "grad_evals", "loss"} <= set(
        curves.columns
    )
    # Per optimizer: the grid's 2 learning rates x 2 tuning seeds, 3 more rates beyond the
    # grid's edge where the pick sits at one (bench.protocols.extended_trials), and the
    # tuned setting x 10 evaluation seeds.
    for _, rows in runs.groupby("optimizer"):
        tune = rows[rows.role == "tune"]
        rates = sorted(tune.learning_rate.unique())
        assert {1e-3, 1e-2} <= set(np.round(rates, 12))
        assert len(rates) in (2, 2 + 3)
        assert tune.groupby("learning_rate").size().eq(2).all()
        assert (rows.role == "eval").sum() == 10
        assert rows[rows.role == "eval"].learning_rate.nunique() == 1
    # curves.csv.gz holds the tuned learning rate only, every step of a 30-step run.
    assert curves.groupby("optimizer")["learning_rate"].nunique().eq(1).all()
    assert curves.groupby("optimizer").size().eq(31).all()
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["run", "--problems", "nope"], ["run", "--optimizers", "nope"]])
def test_cli_unknown_name_exits_2_with_the_choices(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "choose from" in err and "Traceback" not in err


def test_layer_gradient_norms_make_up_the_global_gradient_norm():
    problem = next(p for p in PROBLEMS.values() if p.layer_grad_norms and not p.stochastic)
    result = run_sweep(problem, "sgd", [0.1], seeds=2, steps=3, dtype="float64")
    layers = result.layer_grad_norms
    assert layers.shape[:2] == (2, 4) and layers.shape[2] >= 2
    # Layers partition the parameters, so their squared norms add up to the global one.
    np.testing.assert_allclose(np.sqrt((layers**2).sum(-1)), result.grad_norms, rtol=1e-12)


def test_a_two_parameter_problem_records_its_path():
    result = run_sweep("rosenbrock_2d", "sgd", [1e-3], seeds=1, steps=4, dtype="float64")
    assert result.paths.shape == (1, 5, 2)
    # Rosenbrock (1 - x)^2 + 100 (y - x^2)^2 at the raw point (x, y) + (1, 1) - x_star.
    x, y = (result.paths[0] + 1.0 - PROBLEMS["rosenbrock_2d"].x_star).T
    np.testing.assert_allclose((1 - x) ** 2 + 100 * (y - x**2) ** 2, result.losses[0], rtol=1e-12)
    assert result.layer_grad_norms is None


def test_fold_indices_split_the_examples_into_equal_held_out_blocks():
    train, held_out = fold_indices(23, 5)
    assert train.shape == (5, 19) and held_out.shape == (5, 4)
    assert len(set(held_out.ravel())) == 20  # disjoint blocks
    for t, h in zip(train, held_out, strict=True):
        assert sorted([*t, *h]) == list(range(23))
    with pytest.raises(ValueError, match="folds"):
        fold_indices(23, 1)


def test_cross_validation_lanes_train_without_their_fold():
    problem = PROBLEMS["logistic_synthetic_200x10"]
    result = run_sweep(problem, "sgd", [0.5], seeds=[1], steps=5, dtype="float64", folds=4)
    assert result.lanes == 4 and list(result.folds) == [0, 1, 2, 3]
    train, held_out = fold_indices(200, 4)
    data = jax.tree.map(lambda x: np.asarray(x, np.float64), problem.data())
    for fold in range(4):
        subset = jax.tree.map(lambda x, idx=train[fold]: x[idx], data)
        params = compiled(problem.init, jax.random.PRNGKey(0), level=result.level)(
            jax.random.split(jax.random.PRNGKey(1))[0]
        )
        params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
        # Step 0 is the training loss of the initial point on this fold's training set.
        np.testing.assert_allclose(result.losses[fold, 0], problem.loss(params, subset), rtol=1e-12)
    valid = result.metrics["validation_loss"]
    assert np.isfinite(valid).all() and len(np.unique(valid)) == 4
    with pytest.raises(ValueError, match="data-set"):
        run_sweep("rosenbrock_2d", "sgd", [0.1], seeds=1, steps=2, folds=2)


# Two pairs swept at once (`--jobs 2`) whose programs both call jaxlib's batched LAPACK
# kernels (SOAP's eigh and QR): without the runner's lock they wait on each other in
# XLA's thread pool forever. In a child process, so that a hang fails instead of stalling.
CONCURRENT_LINALG = """
from concurrent.futures import ThreadPoolExecutor
from bench import run_sweep
def sweep(problem):
    for _ in range(3):
        run_sweep(problem, "soap", [1e-3, 1e-2], seeds=5, steps=100, chunk=10)
with ThreadPoolExecutor(2) as pool:
    list(pool.map(sweep, ["mlp_digits_relu_32", "mlp_digits_sigmoid_32"]))
print("finished")
"""


@pytest.mark.slow
def test_two_sweeps_calling_lapack_at_once_finish():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_LINALG],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-2000:]
