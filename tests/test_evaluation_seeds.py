"""Held-out evaluation seeds: tuning sees seeds 0..seeds-1; the tuned setting of every pair
is re-run on fresh seeds, and the curves and the summary come from those lanes. And the
size of the committed results folder."""

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import spec as suite_spec
from bench import suite
from bench.analysis.tuning import tuned_trials
from bench.results import schema
from bench.spec import SuiteSpec

PROBLEMS_RUN = ("rosenbrock_2d", "mlp_digits_sigmoid_32", "least_squares_diabetes_batch32")
SPEC = SuiteSpec(
    problems=PROBLEMS_RUN,
    optimizers=("sgd", "adam"),
    seeds=2,
    eval_seeds=3,
    grid={"sgd": (1e-3, 1e-2), "adam": (1e-3, 1e-2)},
    steps=dict.fromkeys(PROBLEMS_RUN, 30),
    curve_points=10,
)
# The size a full `make bench` may write into results/, and what its figures take
# (the PNG files of the committed results/).
MAX_RESULTS_BYTES = 20e6


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "out"
    suite.run_suite(SPEC, out, progress=io.StringIO())
    names = ["runs", "curves", "paths", "layer_grad_norms", "summary"]
    return {name: pd.read_csv(out / schema.file_name(name)) for name in names}


def test_evaluation_seeds_are_fresh_and_as_many_as_the_spec_asks():
    assert SPEC.evaluation_seeds() == [1000, 1001, 1002]
    many = replace(SPEC, seeds=1500)  # tuning seeds past 1000 push the held-out ones on
    assert min(many.evaluation_seeds()) == 1500
    assert suite_spec.load().eval_seeds >= 10


@pytest.mark.slow
def test_each_pair_reruns_its_tuned_setting_on_the_evaluation_seeds(tables):
    runs = tables["runs"]
    assert set(runs["role"]) == {"tune", "eval"}
    tune, held_out = runs[runs["role"] == "tune"], runs[runs["role"] == "eval"]
    assert set(tune["seed"]) == {0, 1}
    assert set(held_out["seed"]) == set(SPEC.evaluation_seeds())
    tuned = tuned_trials(tune)
    for pick in tuned.itertuples():
        lanes = held_out[
            (held_out["problem"] == pick.problem) & (held_out["optimizer"] == pick.optimizer)
        ]
        assert len(lanes) == SPEC.eval_seeds
        assert (lanes["learning_rate"] == pick.learning_rate).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["curves", "paths", "layer_grad_norms"])
def test_curves_paths_and_layer_norms_come_from_the_evaluation_lanes(tables, name):
    frame, held_out = tables[name], tables["runs"].query("role == 'eval'")
    key = ["problem", "optimizer", "learning_rate"] + ([] if name == "curves" else ["seed"])
    merged = frame.merge(held_out[key].drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    if name != "curves":  # the figures draw one seed's
        assert set(frame["seed"]) == {SPEC.evaluation_seeds()[0]}
        return
    last = frame[frame["step"] == frame["step"].max()].set_index(["problem", "optimizer"])
    final = held_out.groupby(["problem", "optimizer"])["final_loss"].median()
    np.testing.assert_allclose(last["loss"], final.loc[last.index], rtol=1e-8)


@pytest.mark.slow
def test_the_summary_reports_the_evaluation_lanes(tables):
    summary, runs = tables["summary"], tables["runs"]
    assert (summary["seeds"] == SPEC.eval_seeds).all()
    held_out = runs[runs["role"] == "eval"]
    for row in summary.itertuples():
        lanes = held_out[
            (held_out["problem"] == row.problem) & (held_out["optimizer"] == row.optimizer)
        ]
        assert row.learning_rate == lanes["learning_rate"].iloc[0]
        assert row.median_best_suboptimality == pytest.approx(lanes["best_suboptimality"].median())


def test_the_committed_results_folder_stays_within_its_size_budget():
    """What `make bench`, `make bench-models`, `make cutest` and `make perf` wrote into
    results/, as committed, comes to at most 20 MB in all (results/bbob, which
    `make bench-bbob` writes, is not committed: .gitignore)."""
    root = Path(__file__).resolve().parents[1] / "results"
    ignored = root / "bbob"
    files = [f for f in root.rglob("*") if f.is_file() and ignored not in f.parents]
    assert (root / "meta.json").exists(), "results/ holds no full run"
    assert sum(f.stat().st_size for f in files) <= MAX_RESULTS_BYTES
