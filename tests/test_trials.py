"""The trial as the unit of tuning: lanes of different hyperparameter settings that share a
learning rate are never pooled as if they were seeds of one setting."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench import suite
from bench.analysis import stats, tuning
from bench.report import tables
from bench.results import compare, schema
from bench.spec import SuiteSpec
from bench.sweep.records import curves_frame, runs_frame
from bench.sweep.runner import run_sweep
from optimizers import OPTIMIZERS

QUADRATIC = "quadratic_20d_cond1e3"
DATASET = "logistic_breast_cancer"
# On QUADRATIC with lr 0.3 neither setting reaches the target in 50 steps; b1 = 0.9 ends
# nearer (f - f* about 14 against 150), so tuning picks it, the second trial.
B1 = [0.0, 0.9]


def with_facts(result, role=None):
    """runs_frame(result) with the columns `suite.sweep_pair` adds after the seed."""
    facts = {"f_star": result.f_star, "target": result.target, "steps": 50}
    facts = facts if role is None else {"role": role, **facts}
    return schema.ordered(runs_frame(result).assign(**facts), result.metrics)


@pytest.fixture(scope="module")
def b1_sweep():
    return run_sweep(QUADRATIC, "adam", learning_rates=[0.3], seeds=2, steps=50, b1=B1)


def test_every_lane_carries_its_trial_and_every_swept_hyperparameter(b1_sweep):
    runs = runs_frame(b1_sweep)
    assert list(runs.columns[:6]) == [
        "problem",
        "optimizer",
        "trial",
        "learning_rate",
        "b1",
        "seed",
    ]
    assert runs["trial"].tolist() == [0, 0, 1, 1]
    assert runs["b1"].tolist() == [0.0, 0.0, 0.9, 0.9]
    assert schema.hyperparameters(runs) == ["learning_rate", "b1"]
    curves = curves_frame(b1_sweep)
    assert sorted(set(zip(curves["trial"], curves["b1"], strict=True))) == [(0, 0.0), (1, 0.9)]


def test_summarize_reports_the_tuned_b1_over_its_own_two_seeds(b1_sweep):
    runs = with_facts(b1_sweep)
    medians = tuning.grid_medians(runs)
    assert medians[["trial", "learning_rate", "b1"]].values.tolist() == [
        [0, 0.3, 0.0],
        [1, 0.3, 0.9],
    ]
    summary = tuning.summarize(runs)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["seeds"] == 2  # not the 4 lanes of both settings
    lanes = runs[runs["trial"] == row["trial"]]
    assert (lanes["b1"] == row["b1"]).all() and row["learning_rate"] == 0.3
    assert row["median_final_suboptimality"] == lanes["final_suboptimality"].median()
    assert row["b1"] == 0.9 and row["median_final_suboptimality"] < medians["gap"].max()
    assert "median_b1" not in summary  # a hyperparameter is not a problem metric
    with_intervals = stats.with_intervals(summary, runs)
    assert "| tuned lr | tuned b1 |" in tables.problem_table(with_intervals)


def test_pairs_that_sweep_different_hyperparameters_share_one_table(b1_sweep):
    sgd = run_sweep(QUADRATIC, "sgd", learning_rates=[0.01, 0.1], seeds=2, steps=50)
    runs = schema.concat([with_facts(b1_sweep), with_facts(sgd)])
    assert schema.hyperparameters(runs) == ["learning_rate", "b1"]
    assert runs.loc[runs["optimizer"] == "sgd", "b1"].isna().all()
    assert len(tuning.grid_medians(runs)) == 2 + 2  # sgd's trials survive their empty b1
    summary = tuning.summarize(runs).set_index("optimizer")
    assert summary.loc["adam", "seeds"] == summary.loc["sgd", "seeds"] == 2
    assert np.isnan(summary.loc["sgd", "b1"])


def hand_made(lr, b1, trial, steps):
    """Two tune lanes of one trial that reach the target in `steps` (one evaluation a step)."""
    return pd.DataFrame(
        {
            "problem": "p",
            "optimizer": "adam",
            "trial": trial,
            "learning_rate": lr,
            "b1": b1,
            "seed": [0, 1],
            "role": "tune",
            "f_star": 0.0,
            "target": 1e-3,
            "steps": 100,
            "final_suboptimality": 0.0,
            "best_suboptimality": 0.0,
            "steps_to_target": steps,
            "grad_evals_to_target": steps,
            "diverged": False,
        }
    )


def test_tuning_picks_the_fastest_trial_not_the_fastest_pooled_learning_rate():
    # Pooled over b1, lr 0.1 has median cost 15 and lr 0.01 has 12; the fastest trial,
    # (0.1, 0.0) at 10, is the tuned one.
    runs = pd.concat(
        [
            hand_made(0.01, 0.0, 0, 12),
            hand_made(0.01, 0.9, 1, 12),
            hand_made(0.1, 0.0, 2, 10),
            hand_made(0.1, 0.9, 3, 20),
        ],
        ignore_index=True,
    )
    tuned = tuning.tuned_trials(runs).iloc[0]
    assert (tuned["trial"], tuned["learning_rate"], tuned["b1"], tuned["cost"]) == (2, 0.1, 0.0, 10)
    # The eval lanes of the tuned trial, not those of another trial at its learning rate.
    evals = pd.concat([hand_made(0.1, 0.9, 3, 20), hand_made(0.1, 0.0, 2, 10)], ignore_index=True)
    evals = evals.assign(role="eval", seed=[1000, 1001, 1000, 1001])
    summary = tuning.summarize(pd.concat([runs, evals], ignore_index=True))
    assert summary.loc[0, ["trial", "b1", "seeds"]].tolist() == [2, 0.0, 2]
    assert summary.loc[0, "median_steps_to_target"] == 10


def test_a_folder_without_trial_ids_numbers_its_settings_and_compares_with_one(b1_sweep):
    runs = with_facts(b1_sweep)
    older = runs.drop(columns="trial")
    assert schema.with_trials(older)["trial"].tolist() == runs["trial"].tolist()
    assert (
        tuning.summarize(older)
        .drop(columns="trial")
        .equals(tuning.summarize(runs).drop(columns="trial"))
    )
    assert compare.key_columns("runs", runs) == [
        "problem",
        "optimizer",
        "learning_rate",
        "b1",
        "seed",
    ]
    assert compare.compare_tables("runs", older, runs) == []


@pytest.fixture
def adam_sweeping_b1(monkeypatch):
    """The registry's adam with b1 swept as part of its search space."""
    adam = OPTIMIZERS["adam"]
    monkeypatch.setitem(OPTIMIZERS, "adam", replace(adam, hparams={**adam.hparams, "b1": B1}))


def test_the_tuned_trial_is_re_run_on_the_eval_seeds_with_its_whole_setting(adam_sweeping_b1):
    spec = SuiteSpec(
        problems=(QUADRATIC,),
        optimizers=("adam",),
        seeds=2,
        eval_seeds=2,
        grid={"adam": (0.3,)},
        steps={QUADRATIC: 50},
    )
    done = suite.sweep_pair(spec, QUADRATIC, "adam")["tables"]
    runs, curves = done["runs"], done["curves"]
    tune, evals = tuning.lanes_of(runs, "tune"), tuning.lanes_of(runs, "eval")
    assert tune.groupby(["trial", "b1"]).size().tolist() == [2, 2]
    tuned = tuning.tuned_trials(runs).iloc[0]
    assert (tuned["trial"], tuned["b1"]) == (1, 0.9)
    assert (evals["trial"] == 1).all() and (evals["b1"] == 0.9).all() and len(evals) == 2
    assert (curves["trial"] == 1).all() and (curves["b1"] == 0.9).all()
    # The re-run reproduces the tuning lanes' numbers for the same setting on any seed.
    again = run_sweep(QUADRATIC, "adam", [0.3], seeds=[1000, 1001], steps=50, b1=[0.9])
    assert np.array_equal(evals["final_loss"].to_numpy(), again.losses[:, -1])


@pytest.mark.slow
def test_cross_validation_losses_are_merged_per_trial(adam_sweeping_b1):
    spec = SuiteSpec(
        problems=(DATASET,),
        optimizers=("adam",),
        seeds=2,
        eval_seeds=2,
        grid={"adam": (0.01,)},
        steps={DATASET: 20},
        folds=2,
    )
    runs = suite.sweep_pair(spec, DATASET, "adam")["tables"]["runs"]
    tune = tuning.lanes_of(runs, "tune")
    assert tune["cv_loss"].notna().all()
    folds = run_sweep(DATASET, "adam", [0.01], seeds=2, steps=20, folds=2, b1=B1)
    expected = (
        pd.DataFrame({"b1": folds.hparams["b1"], "seed": folds.seeds})
        .assign(cv_loss=folds.metrics["validation_loss"])
        .groupby(["b1", "seed"])["cv_loss"]
        .mean()
    )
    merged = tune.set_index(["b1", "seed"])["cv_loss"].sort_index()
    assert np.allclose(merged.to_numpy(), expected.sort_index().to_numpy(), rtol=1e-6)
    assert merged.loc[0.0].to_numpy() != pytest.approx(merged.loc[0.9].to_numpy())
    # The summary's held-out loss is the tuned trial's: its evaluation lanes hold none out.
    summary = tuning.summarize(runs).iloc[0]
    tuned = tune[tune["trial"] == summary["trial"]]
    assert summary["median_cv_loss"] == pytest.approx(tuned["cv_loss"].median(), rel=1e-12)
