"""Cost axes: every lane's cumulative steps, gradient evaluations and seconds at each
record point, as the registry entries count them, and the costs to target from them."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.sweep import runner
from bench.sweep.lane import log_step_grid
from bench.sweep.records import curves_frame, runs_frame
from bench.sweep.runner import run_sweep
from optimizers import OPTIMIZERS, apply_updates
from problems import PROBLEMS

QUADRATIC = "quadratic_20d_cond1e3"


@pytest.mark.slow
def test_lbfgs_counts_each_evaluation_once_reusing_its_line_searchs_accepted_point():
    """Counted independently: the loss wrapped with a counter, in a Python loop without jit
    (the line search's while loop then runs in Python, one call per evaluation). As in
    optax's `value_and_grad_from_state` idiom, only x_0's value and gradient are evaluated
    for an update; every later update is given those its line search stored at the point
    it accepted. The loop also checks that what is reused is f and its gradient there."""
    name, steps = "rosenbrock_2d", 12  # curved: the line search tries several points
    problem = PROBLEMS[name]
    result = run_sweep(name, "lbfgs", [1.0], seeds=[0], steps=steps, dtype="float64")
    data = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), problem.data())
    params = jax.tree.map(
        lambda x: x.astype(jnp.float64), problem.init(jax.random.split(jax.random.PRNGKey(0))[0])
    )
    calls = []

    def loss(p, batch):
        calls.append(1)
        return problem.loss(p, batch)

    spec = OPTIMIZERS["lbfgs"]
    opt = spec.factory(learning_rate=1.0, **spec.hparams)
    counted, losses = [0], []
    with jax.disable_jit():
        state = opt.init(params)
        value, grads = jax.value_and_grad(loss)(params, data)
        for _ in range(steps):
            losses.append(float(value))
            extra = spec.update_extras(value, grads, lambda p: loss(p, data))
            updates, state = opt.update(grads, state, params, **extra)
            params = apply_updates(params, updates)
            counted.append(len(calls))
            value, grads = state.value, state.grad
            fresh_value, fresh_grads = jax.value_and_grad(problem.loss)(params, data)
            np.testing.assert_allclose(value, fresh_value, rtol=1e-12)
            np.testing.assert_allclose(grads, fresh_grads, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(result.grad_evals[0], counted)
    # The same trajectory: the sweep's compiled program (LLVM level 1) and this op-by-op
    # loop round a few float64 sums differently, which the line searches carry on (measured:
    # 2.8e-12 relative by step 11). A different count of evaluations takes another path.
    np.testing.assert_allclose(result.losses[0, :steps], losses, rtol=1e-10)
    assert counted[-1] > steps + 1  # the line search tried more than one point somewhere


def test_a_dense_hessian_costs_d_hessian_vector_products_of_two_gradients_each():
    result = run_sweep(QUADRATIC, "newton", [0.5], seeds=[0], steps=6, dtype="float64")
    np.testing.assert_array_equal(result.grad_evals[0], np.arange(7) * (1 + 2 * 20))


def test_sophia_counts_its_hessian_vector_product_at_the_steps_that_make_one():
    """1 a step, and 2 more at steps 1, 11, 21 (its Hessian estimate every 10 updates, from
    the first): whole numbers, as COCO's export needs, never an amortised 1.2 a step."""
    result = run_sweep("rosenbrock_2d", "sophia", [1e-3], seeds=1, steps=25)
    per_step = [1 + 2 * (step % 10 == 0) for step in range(25)]
    np.testing.assert_array_equal(result.grad_evals[0], np.cumsum([0, *per_step]))


@pytest.mark.parametrize(("name", "per_step"), [("sgd", 1), ("sam", 2)])
def test_gradient_rules_count_their_declared_evaluations_per_step(name, per_step):
    result = run_sweep("rosenbrock_2d", name, [1e-3], seeds=2, steps=30, record_points=10)
    np.testing.assert_array_equal(
        result.grad_evals, np.tile(result.record_steps * per_step, (2, 1))
    )


@pytest.mark.parametrize(
    ("problem", "optimizer"),
    [
        ("rosenbrock_2d", "adam"),  # full batch: the record reuses the update's gradient
        ("least_squares_diabetes_batch32", "adam"),  # minibatches: a full-batch evaluation
        (QUADRATIC, "schedule_free_sgd"),  # evaluated at its own point
        ("mlp_digits_sigmoid_32", "sgd"),  # per-layer norms
    ],
)
def test_recording_on_the_log_grid_equals_recording_every_step_there(problem, optimizer):
    every = run_sweep(problem, optimizer, [1e-3, 1e-2], seeds=2, steps=150)
    grid = run_sweep(problem, optimizer, [1e-3, 1e-2], seeds=2, steps=150, record_points=20)
    np.testing.assert_array_equal(grid.record_steps, log_step_grid(150, 20))
    assert grid.losses.shape == (4, len(grid.record_steps)) and len(grid.record_steps) < 30
    for name in ["losses", "grad_norms", "grad_evals", "paths", "layer_grad_norms"]:
        if getattr(every, name) is not None:
            np.testing.assert_array_equal(
                getattr(grid, name), getattr(every, name)[:, grid.record_steps], err_msg=name
            )
    for name, values in every.metrics.items():
        np.testing.assert_array_equal(grid.metrics[name], values)


def test_lanes_in_chunks_equal_lanes_at_once_and_reuse_the_compiled_program(monkeypatch):
    options = dict(steps=40, record_points=10, dtype="float32")
    whole = run_sweep("himmelblau", "adam", [1e-3, 1e-2, 1e-1], seeds=3, **options)
    chunked = run_sweep("himmelblau", "adam", [1e-3, 1e-2, 1e-1], seeds=3, chunk=4, **options)
    for name in ["losses", "grad_norms", "grad_evals", "paths", "seeds"]:
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    built = []
    monkeypatch.setattr(runner, "lane_program", lambda *a: built.append(a) or None)
    # Other seeds and learning rates, lanes in chunks of the same size: no new program.
    again = run_sweep("himmelblau", "adam", [0.05], seeds=[1000, 1001, 1002], chunk=4, **options)
    assert built == [] and again.lanes == 3 and np.isfinite(again.losses).all()


def test_costs_to_target_on_a_full_batch_problem_are_exact_to_the_step():
    sweep = dict(steps=60, seeds=1)
    every = run_sweep("quadratic_20d_cond1e1", "lbfgs", [0.1, 1.0], **sweep)
    result = run_sweep("quadratic_20d_cond1e1", "lbfgs", [0.1, 1.0], record_points=13, **sweep)
    result = dataclasses.replace(result, seconds_per_step=0.5)
    runs = runs_frame(result)
    assert set(runs["steps_to_target"] >= 0) == {True, False}  # one lane reaches it, one not
    exact_somewhere = False
    for lane, row in runs.iterrows():
        first, lasting = _first_and_lasting(~(every.losses[lane] - every.f_star <= every.target))
        assert row["steps_to_first_hit"] == first
        exact_somewhere |= first >= 0 and first not in result.record_steps
        if lasting < 0:
            assert (row["steps_to_target"], row["grad_evals_to_target"]) == (-1, -1)
            assert np.isnan(row["seconds_to_target"])
            continue
        assert row["steps_to_target"] == lasting
        assert row["grad_evals_to_target"] == every.grad_evals[lane, lasting]
        assert row["seconds_to_target"] == 0.5 * row["steps_to_target"]
        exact_somewhere |= lasting not in result.record_steps
    assert exact_somewhere, "the target is reached on record points: the test shows nothing"
    assert (runs["final_grad_evals"] > 60).all()  # a line search: more than one per step
    curves = curves_frame(result)  # one seed per learning rate: its own curve
    np.testing.assert_array_equal(curves["seconds"], 0.5 * curves["step"])
    np.testing.assert_array_equal(curves["grad_evals"], result.grad_evals.ravel())
    np.testing.assert_array_equal(curves["loss"], result.losses.ravel())


def _first_and_lasting(above: np.ndarray) -> tuple[int, int]:
    """Indices of the first point not above the target and of the one from which no point
    is, by a plain loop; -1 where none."""
    first = next((i for i, a in enumerate(above) if not a), -1)
    lasting = -1
    for i in range(len(above) - 1, -1, -1):
        if above[i]:
            break
        lasting = i
    return first, lasting


def test_minibatch_problems_judge_first_and_lasting_success_at_the_record_points():
    # The loss on the fixed evaluation batch is known at the record points only.
    result = run_sweep(
        "least_squares_diabetes_batch32", "adam", [0.05, 0.2, 0.5], seeds=2, steps=200,
        record_points=15,
    )  # fmt: skip
    assert result.reached is None
    runs = runs_frame(result)
    assert (runs["steps_to_target"] >= 0).any()
    for lane, row in runs.iterrows():
        above = ~(result.losses[lane] - result.f_star <= result.target)
        for column, at in zip(
            ["steps_to_first_hit", "steps_to_target"], _first_and_lasting(above), strict=True
        ):
            assert row[column] == (result.record_steps[at] if at >= 0 else -1)


@pytest.mark.parametrize("optimizer", ["schedule_free_sgd", "nadamw"])
def test_full_batch_success_is_judged_at_every_step_at_the_rules_evaluation_point(optimizer):
    # The same lanes recorded at every step (the loss at the evaluation point, which the
    # schedule-free rules declare) give the exact answer the sparse run must find.
    args = ("quadratic_20d_cond1e1", optimizer, [0.05, 0.2, 0.5, 1.0])
    sparse = run_sweep(*args, seeds=2, steps=200, record_points=15)
    every = run_sweep(*args, seeds=2, steps=200, record_points=1000)
    assert len(every.record_steps) == 201 and sparse.reached is not None
    runs, lasted_less = runs_frame(sparse), 0
    for lane, row in runs.iterrows():
        above = ~(every.losses[lane] - every.f_star <= every.target)
        first, lasting = _first_and_lasting(above)
        assert (row["steps_to_first_hit"], row["steps_to_target"]) == (first, lasting)
        evaluations = every.grad_evals[lane]
        assert row["grad_evals_to_target"] == (evaluations[lasting] if lasting >= 0 else -1)
        lasted_less += first != lasting
    assert (runs["steps_to_target"] >= 0).any()
    assert optimizer != "nadamw" or lasted_less  # touches the target, then leaves it


def test_curves_summarise_the_seeds_of_each_setting_diverged_ones_left_out():
    result = run_sweep("rosenbrock_2d", "sgd", [1e-4, 1e-2], seeds=5, steps=40, record_points=8)
    curves = curves_frame(result)
    assert len(curves) == 2 * len(result.record_steps) and "seed" not in curves
    for (lr, step), row in curves.set_index(["learning_rate", "step"]).iterrows():
        column = list(result.record_steps).index(step)
        losses = result.losses[result.learning_rates == lr, column]
        finite = losses[np.isfinite(losses)]
        if len(finite) == 0:
            assert np.isnan(row["loss"])
            continue
        quartiles = np.quantile(finite, [0.25, 0.5, 0.75])
        got = row[["loss_q25", "loss", "loss_q75"]].to_numpy(float)
        np.testing.assert_allclose(got, quartiles, rtol=1e-12)
    assert not np.isfinite(result.losses).all()  # lr 1e-2 diverges on some seed


def test_the_time_per_step_is_the_run_over_its_lane_steps_and_grows_with_the_work():
    small = run_sweep(QUADRATIC, "sgd", [1e-3], seeds=4, steps=300)
    large = run_sweep("mlp_digits_relu_32", "sgd", [1e-3], seeds=4, steps=300)
    assert small.seconds_per_step == pytest.approx(small.run_seconds / (4 * 301), rel=5e-3)
    assert 0 < small.seconds_per_step < large.seconds_per_step
