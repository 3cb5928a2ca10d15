"""The tuning rule, the per-pair summary and the performance profile, on hand-made runs."""

import numpy as np
import pandas as pd
import pytest

from bench.analysis import profiles, tuning
from bench.results import schema
from bench.spec import SuiteSpec, load
from bench.sweep.arguments import skip_reason
from optimizers import OPTIMIZERS, OptimizerSpec, sgd
from problems import PROBLEMS


def lanes(
    problem,
    optimizer,
    lr,
    finals,
    steps,
    diverged=None,
    target=1e-3,
    evals=None,
    role=None,
    levels=None,
):
    """runs.csv rows: one per seed, with the given final suboptimality and steps-to-target.

    evals: gradient evaluations to target (default one per step); seconds are 0.01 a step.
    levels: where given, level name -> steps of lasting success there per seed (or one
    number for all; -1: never), one gradient evaluation a step; a level it does not name
    is NaN (not resolved on the problem). None: no level columns (an older folder).
    """
    n = len(finals)
    steps = np.asarray(steps)
    evals = steps if evals is None else np.asarray(evals)
    frame = pd.DataFrame(
        {
            "problem": problem,
            "optimizer": optimizer,
            "learning_rate": lr,
            "seed": np.arange(n),
            "f_star": 0.0,
            "target": target,
            "steps": 100,
            "final_loss": finals,
            "best_loss": finals,
            "final_suboptimality": finals,
            "best_suboptimality": finals,
            "final_grad_norm": 1.0,
            "steps_to_target": steps,
            "grad_evals_to_target": evals,
            "seconds_to_target": np.where(steps >= 0, 0.01 * steps, np.nan),
            "diverged": [False] * n if diverged is None else diverged,
            "compile_seconds": 0.5,
            "run_seconds": 0.1,
        }
    )
    if levels is not None:
        frame["seconds_per_step"] = 0.01
        for name in schema.LEVELS:
            values = np.broadcast_to(np.asarray(levels.get(name, np.nan), np.float64), (n,))
            frame[schema.level_column("steps", name)] = values
            frame[schema.level_column("grad_evals", name)] = values
    return frame if role is None else frame.assign(role=role)


def tuned(runs, cost="grad_evals"):
    return tuning.tuned_trials(runs, cost).learning_rate.tolist()


def test_a_faster_setting_wins_though_rounding_leaves_its_final_gap_larger():
    # float32 rounding: lr 0.1 ends 4.2e-8 below f*, lr 1 ends 4.7e-8 above it; both
    # are far under the target, and lr 1 gets there in 33 steps against 80.
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [-4.2e-8] * 3, [80] * 3),
            lanes("p", "a", 1.0, [4.7e-8] * 3, [33] * 3),
        ]
    )
    assert tuned(runs) == [1.0]
    row = tuning.summarize(runs).iloc[0]
    assert row.median_steps_to_target == 33 and row.median_final_suboptimality == 4.7e-8


def test_a_setting_that_misses_the_target_loses_to_one_that_reaches_it():
    # Stochastic: lr 0.1 touches the target and ends above it in the noise; lr 0.01
    # ends lower but never reaches the target.
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [2e-3] * 3, [20] * 3),
            lanes("p", "a", 0.01, [1.5e-3] * 3, [-1] * 3),
        ]
    )
    assert tuned(runs) == [0.1]


def test_settings_that_miss_the_target_compete_on_final_gap_and_a_diverged_seed_is_infinite():
    runs = pd.concat(
        [
            # median final 2e-2 (one diverged seed among three is not the median)
            lanes("p", "a", 0.1, [1e-2, 2e-2, np.nan], [-1, -1, -1], [False, False, True]),
            # lower numbers, but two of three seeds diverged: median +inf
            lanes("p", "a", 1.0, [1e-4, np.inf, np.inf], [-1, -1, -1], [False, True, True]),
            lanes("p", "a", 0.01, [5e-2] * 3, [-1] * 3),
        ]
    )
    row = tuning.summarize(runs).iloc[0]
    assert row.learning_rate == 0.1
    assert row.median_final_suboptimality == 2e-2
    assert row.q25_final_suboptimality == pytest.approx(1.5e-2, rel=1e-12)  # halfway
    assert row.q75_final_suboptimality == np.inf  # between 2e-2 and the diverged seed
    assert row.median_steps_to_target == np.inf and row.success_rate == 0
    assert row.diverged_share == pytest.approx(3 / 9)
    # Within 10x of the tuned median f - f* 2e-2: lr 0.1 and 0.01, not 1.0.
    assert row.tuneability == pytest.approx(2 / 3)


def test_values_below_the_target_count_as_the_target_and_ties_go_to_the_smaller_lr():
    runs = pd.concat(
        [
            lanes("p", "a", 0.3, [1e-12, 1e-12], [20, 20]),
            lanes("p", "a", 0.1, [1e-5, 1e-5], [20, 20]),
            lanes("p", "a", 1.0, [1e-9, 1e-9], [30, 30]),
        ]
    )
    assert tuned(runs) == [0.1]


def test_the_cost_axis_changes_the_winner_where_step_costs_differ():
    # A line search: lr 0.3 takes fewer steps, lr 1 fewer gradient evaluations.
    runs = pd.concat(
        [
            lanes("p", "lbfgs", 0.3, [0.0] * 3, [10] * 3, evals=[100] * 3),
            lanes("p", "lbfgs", 1.0, [0.0] * 3, [15] * 3, evals=[30] * 3),
        ]
    )
    assert tuned(runs, "steps") == [0.3]
    assert tuned(runs, "seconds") == [0.3]
    assert tuned(runs, "grad_evals") == [1.0]


def test_tuning_reads_tune_lanes_and_reports_eval_lanes():
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [0.0] * 3, [50] * 3, role="tune"),
            lanes("p", "a", 1.0, [0.0] * 3, [20] * 3, role="tune"),
            # Fresh seeds of the tuned setting: the only lanes reported.
            lanes("p", "a", 1.0, [1e-5] * 10, [25] * 9 + [-1], role="eval").assign(
                seed=range(3, 13)
            ),
            # Eval lanes of a setting that is not tuned (they would win if tuning read them).
            lanes("p", "a", 0.1, [0.0] * 10, [1] * 10, role="eval").assign(seed=range(3, 13)),
        ]
    )
    row = tuning.summarize(runs).iloc[0]
    assert row.learning_rate == 1.0 and row.seeds == 10
    assert row.median_steps_to_target == 25 and row.success_rate == 0.9
    assert row.median_final_suboptimality == 1e-5
    assert row.median_seconds_to_target == pytest.approx(0.25)


def test_a_tuned_setting_without_eval_lanes_is_named():
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [0.0] * 2, [50] * 2, role="tune"),
            lanes("p", "a", 1.0, [0.0] * 2, [20] * 2, role="tune"),
            lanes("p", "a", 0.1, [0.0] * 2, [50] * 2, role="eval"),
        ]
    )
    with pytest.raises(ValueError, match=r"a on p \(lr 1\)"):
        tuning.summarize(runs)


def test_tuneability_counts_grid_points_within_the_profile_window_of_the_tuned_cost():
    runs = pd.concat(
        [
            lanes("p", "a", 1.0, [0.0], [10]),
            lanes("p", "a", 0.3, [0.0], [40]),  # 4x: still scores in the profile
            lanes("p", "a", 0.1, [0.0], [41]),
            lanes("p", "a", 0.03, [0.5], [-1]),
        ]
    )
    assert tuning.summarize(runs).tuneability.iloc[0] == 0.5


def test_a_grid_where_every_lane_diverges_is_not_tuneable_at_all():
    # inf <= 10 x inf held every trial "close" to a tuned trial that diverged: 100%.
    runs = pd.concat(
        [
            lanes("p", "a", lr, [np.inf, np.inf], [-1, -1], diverged=[True, True])
            for lr in (0.1, 1.0)
        ]
    )
    assert tuning.summarize(runs).tuneability.iloc[0] == 0.0


def test_cross_validation_loss_takes_the_place_of_the_final_gap():
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [1e-2, 1e-2], [-1, -1]).assign(cv_loss=0.9),
            lanes("p", "a", 1.0, [5e-2, 5e-2], [-1, -1]).assign(cv_loss=0.5),
        ]
    )
    row = tuning.summarize(runs).iloc[0]
    assert row.learning_rate == 1.0 and row.tuned_on == "cv_loss" and row.median_cv_loss == 0.5
    # Tuneability on the training f - f*: 1e-2 is within 10x of 5e-2.
    assert row.tuneability == 1.0
    reaching = pd.concat([runs, lanes("p", "a", 0.01, [1e-4] * 2, [90] * 2).assign(cv_loss=2.0)])
    assert tuned(reaching) == [0.01]


def test_a_runs_table_without_the_other_cost_axes_is_summarized_on_steps():
    runs = lanes("p", "a", 0.1, [0.0] * 2, [5, 7]).drop(
        columns=["grad_evals_to_target", "seconds_to_target"]
    )
    assert tuning.recorded_cost(runs, "grad_evals") == "steps"
    row = tuning.summarize(runs, "steps").iloc[0]
    assert row.median_steps_to_target == 6 and np.isnan(row.median_grad_evals_to_target)


def test_ranking_success_first_then_cost_on_the_chosen_axis():
    runs = pd.concat(
        [
            lanes("p", "fast_but_flaky", 0.1, [1e-5, 1.0], [5, -1]),
            lanes("p", "slow", 0.1, [1e-5, 1e-5], [80, 90]),
            lanes("p", "quick", 0.1, [1e-4, 1e-4], [40, 40], evals=[400, 400]),
        ]
    )
    by_steps = tuning.summarize(runs, "steps").sort_values("rank").optimizer.tolist()
    by_evals = tuning.summarize(runs, "grad_evals").sort_values("rank").optimizer.tolist()
    assert by_steps == ["quick", "slow", "fast_but_flaky"]
    assert by_evals == ["slow", "quick", "fast_but_flaky"]


def test_performance_profile_and_integrated_score_by_hand():
    # Costs to target: p1: a 10, b 20; p2: a 40, b 20; p3: a 10, b never; p4: nobody.
    summary = pd.DataFrame(
        {
            "problem": ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"],
            "optimizer": ["a", "b"] * 4,
            "median_steps_to_target": [10, 20, 40, 20, 10, np.inf, np.inf, np.inf],
        }
    )
    profile = profiles.performance_profile(summary, np.array([1.0, 1.99, 2.0, 100.0]), "steps")
    # p4 is left out. a: ratios 1, 2, 1; b: ratios 2, 1, inf.
    np.testing.assert_allclose(profile["a"], [2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(profile["b"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    scores = profiles.integrated_scores(summary, "steps")
    # a: 2/3 on [1, 2), 1 on [2, 4] -> (2/3 * 1 + 1 * 2) / 3; b: (1/3 + 2/3 * 2) / 3.
    assert scores["a"] == pytest.approx((2 / 3 + 2) / 3, rel=1e-12)
    assert scores["b"] == pytest.approx((1 / 3 + 4 / 3) / 3, rel=1e-12)
    # The closed form equals the integral of the profile (trapezoid on a fine grid).
    taus = np.linspace(1.0, tuning.MAX_RATIO, 30001)
    area = np.trapezoid(profiles.performance_profile(summary, taus, "steps"), taus, axis=0) / 3
    np.testing.assert_allclose(area, scores[["a", "b"]], atol=1e-4)


def test_capability_flags_skip_stochastic_problems():
    stochastic = next(p for p in PROBLEMS.values() if p.stochastic)
    deterministic = PROBLEMS["rosenbrock_2d"]
    line_search = OptimizerSpec(sgd, (0.1,), needs_value_fn=True)
    full_batch = OptimizerSpec(sgd, (0.1,), deterministic_only=True)
    assert "line search" in skip_reason(stochastic, line_search)
    assert "full-batch" in skip_reason(stochastic, full_batch)
    assert skip_reason(deterministic, line_search) is None
    assert skip_reason(stochastic, OPTIMIZERS["sgd"]) is None


def test_spec_grid_budget_and_quick_stride():
    spec = SuiteSpec(problems=("rosenbrock_2d",), optimizers=("sgd",), grid_stride=2, max_steps=50)
    assert spec.learning_rates("sgd") == OPTIMIZERS["sgd"].learning_rates[::2]
    assert spec.budget("rosenbrock_2d") == min(50, PROBLEMS["rosenbrock_2d"].steps)


def test_dense_second_order_methods_skip_large_problems():
    dense = OptimizerSpec(sgd, (0.1,), max_dim=100)
    assert "at most 100 parameters" in skip_reason(PROBLEMS["mlp_digits_relu_32"], dense)
    assert skip_reason(PROBLEMS["rosenbrock_2d"], dense) is None


def test_data_profile_by_hand():
    # Gradient evaluations to target: p1 (d = 2): a 6, b 30; p2 (d = 9): a never, b 20.
    # In units of d + 1: p1: a 2, b 10; p2: a inf, b 2.
    summary = pd.DataFrame(
        {
            "problem": ["p1", "p1", "p2", "p2"],
            "optimizer": ["a", "b"] * 2,
            "median_grad_evals_to_target": [6, 30, np.inf, 20],
        }
    )
    profile = profiles.data_profile(summary, {"p1": 2, "p2": 9}, np.array([1.0, 2.0, 10.0]))
    np.testing.assert_allclose(profile["a"], [0, 0.5, 0.5])
    np.testing.assert_allclose(profile["b"], [0, 0.5, 1])


def test_no_grid_point_reaches_the_target_cheaper_than_the_tuned_one():
    rng = np.random.default_rng(0)
    frames = []
    for pair in range(30):
        for lr in (0.01, 0.1, 1.0):
            steps = rng.choice([-1, 5, 20, 80], size=5)
            finals = np.where(steps >= 0, rng.uniform(-1e-8, 1e-3, 5), rng.uniform(1e-3, 1, 5))
            frames.append(lanes(f"p{pair}", "a", lr, finals, steps, evals=3 * steps))
    runs = pd.concat(frames)
    cheapest = tuning.grid_medians(runs).groupby("problem")["cost"].min()
    tuned = tuning.tuned_trials(runs).set_index("problem")
    np.testing.assert_array_equal(tuned["cost"], cheapest)
    assert np.isfinite(cheapest).sum() > 10  # most pairs have a setting that reaches the target


def test_a_suite_file_with_an_unknown_cost_is_refused(tmp_path):
    bad = tmp_path / "suite.toml"
    bad.write_text('cost = "minutes"\n')
    with pytest.raises(ValueError, match="cost = 'minutes'; choose from: steps, grad_evals"):
        load(bad)
    bad.write_text('cost = "steps"\n')
    assert load(bad).cost == "steps"


def test_a_model_family_run_by_some_optimizers_only_is_left_out_of_the_overall_ranking():
    def rows(problem, optimizers):
        return [{"problem": problem, "optimizer": o} for o in optimizers]

    summary = pd.DataFrame(
        rows("rosenbrock_2d", ["sgd", "adam", "lbfgs"])
        + rows("least_squares_diabetes_batch32", ["sgd", "adam"])  # lbfgs cannot run it
        + rows("cnn_digits", ["sgd", "adam"])  # the suite declined lbfgs there
    )
    models = {"cnn_digits"}
    assert set(profiles.ranked(summary, models)["problem"]) == {
        "rosenbrock_2d",
        "least_squares_diabetes_batch32",
    }
    everyone = pd.concat([summary, pd.DataFrame(rows("cnn_digits", ["lbfgs"]))])
    assert "cnn_digits" in set(profiles.ranked(everyone, models)["problem"])
