"""The tuning rule, the per-pair summary and the performance profile, on hand-made runs."""

import numpy as np
import pandas as pd
import pytest

from bench import tuning
from bench.spec import SuiteSpec, skip_reason
from optimizers import OPTIMIZERS, OptimizerSpec, sgd
from problems import PROBLEMS


def lanes(problem, optimizer, lr, finals, steps, diverged=None, target=1e-3):
    """runs.csv rows: one per seed, with the given final suboptimality and steps-to-target."""
    n = len(finals)
    return pd.DataFrame(
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
            "diverged": [False] * n if diverged is None else diverged,
            "compile_seconds": 0.5,
            "run_seconds": 0.1,
        }
    )


def test_the_lowest_median_wins_and_a_diverged_seed_counts_as_infinite():
    runs = pd.concat(
        [
            # medians: lr 0.1 -> 2e-4 (one diverged seed among three is not the median)
            lanes("p", "a", 0.1, [1e-4, 2e-4, np.nan], [10, 12, -1], [False, False, True]),
            # lr 1.0: lower numbers, but two of three seeds diverged -> median +inf
            lanes("p", "a", 1.0, [1e-9, np.inf, np.inf], [3, -1, -1], [False, True, True]),
            lanes("p", "a", 0.01, [5e-4, 6e-4, 7e-4], [50, 60, 70]),
        ]
    )
    summary = tuning.summarize(runs)
    row = summary.iloc[0]
    assert row.learning_rate == 0.1
    assert row.median_final_suboptimality == 2e-4
    assert row.q25_final_suboptimality == pytest.approx(1.5e-4, rel=1e-12)  # halfway
    assert row.q75_final_suboptimality == np.inf  # between 2e-4 and the diverged seed
    assert row.median_steps_to_target == 12
    assert row.success_rate == pytest.approx(2 / 3)
    assert row.diverged_share == pytest.approx(3 / 9)
    # Within 10x of max(best 2e-4, target 1e-3) = 1e-2: lr 0.1 and 0.01, not 1.0.
    assert row.tuneability == pytest.approx(2 / 3)


def test_ties_go_to_fewer_steps_then_to_the_smaller_learning_rate():
    tied = pd.concat(
        [
            lanes("p", "a", 0.1, [0.0, 0.0], [30, 30]),
            lanes("p", "a", 0.3, [0.0, 0.0], [20, 20]),
            lanes("p", "a", 1.0, [0.0, 0.0], [20, 20]),
        ]
    )
    assert tuning.tuned_learning_rates(tied).learning_rate.tolist() == [0.3]


def test_cross_validation_loss_replaces_the_suboptimality_where_present():
    runs = pd.concat(
        [
            lanes("p", "a", 0.1, [1e-6, 1e-6], [5, 5]).assign(cv_loss=0.9),
            lanes("p", "a", 1.0, [1e-2, 1e-2], [50, 50]).assign(cv_loss=0.5),
        ]
    )
    row = tuning.summarize(runs).iloc[0]
    assert row.learning_rate == 1.0 and row.tuned_on == "cv_loss" and row.median_cv_loss == 0.5


def test_ranking_success_first_then_steps():
    runs = pd.concat(
        [
            lanes("p", "fast_but_flaky", 0.1, [1e-5, 1.0], [5, -1]),
            lanes("p", "slow", 0.1, [1e-5, 1e-5], [80, 90]),
            lanes("p", "quick", 0.1, [1e-4, 1e-4], [40, 40]),
        ]
    )
    summary = tuning.summarize(runs)
    assert summary.sort_values("rank").optimizer.tolist() == ["quick", "slow", "fast_but_flaky"]


def test_performance_profile_and_integrated_score_by_hand():
    # Steps-to-target: p1: a 10, b 20; p2: a 40, b 20; p3: a 10, b never; p4: nobody.
    summary = pd.DataFrame(
        {
            "problem": ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"],
            "optimizer": ["a", "b"] * 4,
            "median_steps_to_target": [10, 20, 40, 20, 10, np.inf, np.inf, np.inf],
        }
    )
    profile = tuning.performance_profile(summary, np.array([1.0, 1.99, 2.0, 100.0]))
    # p4 is left out. a: ratios 1, 2, 1; b: ratios 2, 1, inf.
    np.testing.assert_allclose(profile["a"], [2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(profile["b"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    scores = tuning.integrated_scores(summary)
    # a: 2/3 on [1, 2), 1 on [2, 4] -> (2/3 * 1 + 1 * 2) / 3; b: (1/3 + 2/3 * 2) / 3.
    # The trapezoid over a 601-point grid smears each jump over one cell of width 0.005.
    assert scores["a"] == pytest.approx((2 / 3 + 2) / 3, abs=1e-3)
    assert scores["b"] == pytest.approx((1 / 3 + 4 / 3) / 3, abs=1e-3)


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
