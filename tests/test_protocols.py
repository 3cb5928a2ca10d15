"""Tuning protocols: the trials each runs, how algoperf chooses, the budget curves, and
the command line's `--protocol` end to end."""

import io
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from bench import protocols, suite
from bench.analysis import budget, tuning
from bench.cli import main
from bench.results import schema
from bench.spec import SuiteSpec
from optimizers import OPTIMIZERS, Range

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("grid", protocols.Protocol("grid")),
        ("random:16", protocols.Protocol("random", 16)),
        ("algoperf", protocols.Protocol("algoperf")),
        ("defaults", protocols.Protocol("defaults")),
    ],
)
def test_parse_reads_every_protocol_and_prints_it_back(text, parsed):
    assert protocols.parse(text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["random", "random:0", "random:x", "grid:3", "bayes", ""])
def test_parse_refuses_anything_else_in_one_line(text):
    with pytest.raises(ValueError, match="protocol") as error:
        protocols.parse(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("dim, base", [(0, 2), (1, 3), (2, 5)])
def test_halton_points_fill_every_cell_of_their_base_once(dim, base):
    """base^2 consecutive points of a (scrambled) Halton dimension of that base put one
    point in each of base^2 equal cells: the stratification random search lacks."""
    points = protocols.halton(base**2, 3, seed=0)[:, dim]
    assert ((0 <= points) & (points < 1)).all()
    cells = np.floor(points * base**2).astype(int)
    assert sorted(cells) == list(range(base**2))


def test_halton_is_fixed_by_its_seed_and_scrambled_by_it():
    assert np.array_equal(protocols.halton(8, 4, 0), protocols.halton(8, 4, 0))
    assert not np.array_equal(protocols.halton(8, 4, 0), protocols.halton(8, 4, 1))


def test_grid_and_defaults_trials():
    adam = OPTIMIZERS["adam"]
    grid = protocols.parse("grid").trials(adam, (1e-3, 1e-2))
    assert grid == [{"learning_rate": 1e-3}, {"learning_rate": 1e-2}]
    assert protocols.parse("defaults").trials(adam, (1e-3,)) == [adam.defaults()]


def test_a_grid_extends_beyond_the_edge_its_pick_sits_at_by_its_own_spacing():
    trials = protocols.grid_trials((1e-3, 1e-2, 1e-1), {"b1": [0.0, 0.9]})
    at = {(t["learning_rate"], t["b1"]): i for i, t in enumerate(trials)}
    above = protocols.extended_trials(trials, at[(1e-1, 0.9)], "high")
    assert [t["b1"] for t in above] == [0.9] * protocols.EXTENSION
    np.testing.assert_allclose([t["learning_rate"] for t in above], [1.0, 10.0, 100.0])
    below = protocols.extended_trials(trials, at[(1e-3, 0.0)], "low", points=2)
    np.testing.assert_allclose([t["learning_rate"] for t in below], [1e-4, 1e-5])
    assert protocols.extended_trials(trials, at[(1e-2, 0.0)], "") == []  # inside: none
    assert protocols.parse("grid").extends and not protocols.parse("random:8").extends


def test_a_pair_tuned_at_its_grids_edge_sweeps_beyond_it_and_picks_again():
    # sgd on the quadratic from 1e-4: the larger rate of (1e-4, 2e-4) is the better one,
    # and so are the extension's 4e-4, 8e-4 and 1.6e-3 in turn.
    spec = SuiteSpec(
        problems=("quadratic_20d_cond1e1",),
        optimizers=("sgd",),
        seeds=2,
        eval_seeds=2,
        grid={"sgd": (1e-4, 2e-4)},
        steps={"quadratic_20d_cond1e1": 30},
    )
    runs = suite.sweep_pair(spec, "quadratic_20d_cond1e1", "sgd")["tables"]["runs"]
    tune = tuning.lanes_of(runs, "tune")
    rates = tune.groupby("trial")["learning_rate"].first()
    np.testing.assert_allclose(rates.to_numpy(), [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3])
    assert (tune.groupby("trial").size() == 2).all()
    evaluated = tuning.lanes_of(runs, "eval")
    assert set(evaluated["trial"]) == {4} and set(evaluated["learning_rate"]) == {1.6e-3}


@pytest.mark.parametrize("name", ["adam", "momentum", "lion", "prodigy"])
def test_random_trials_cover_the_whole_space_inside_its_ranges(name):
    spec = OPTIMIZERS[name]
    space = spec.space()
    trials = protocols.parse("random:32").trials(spec, spec.learning_rates)
    assert len(trials) == 32
    assert all(list(t) == list(space) for t in trials)  # learning_rate first
    for dimension, values in ((d, [t[d] for t in trials]) for d in space):
        assert all(space[dimension].contains(v) for v in values), dimension
        if isinstance(space[dimension], Range):
            assert len(set(values)) == len(values), dimension
    assert protocols.parse("random:32").trials(spec, spec.learning_rates) == trials
    assert len(protocols.parse("algoperf").trials(spec, spec.learning_rates)) == 15


def _medians(costs_by_trial):
    """Tune lanes of one pair, one seed per trial, with the given costs to target."""
    rows = []
    for trial, cost in enumerate(costs_by_trial):
        rows.append(
            {
                "problem": "p",
                "optimizer": "o",
                "trial": trial,
                "study": trial // protocols.TRIALS_PER_STUDY,
                "learning_rate": 0.1 + trial,
                "seed": 0,
                "role": "tune",
                "target": 1e-6,
                "steps_to_target": -1 if cost is None else cost,
                "final_suboptimality": 1.0 if cost is None else 0.0,
                "diverged": False,
            }
        )
    return pd.DataFrame(rows)


def test_algoperf_reports_the_best_trial_of_the_median_study():
    # Study bests: study 0 -> trial 3 (cost 40), study 1 -> trial 7 (cost 10),
    # study 2 misses everywhere -> its best is by final f - f*. Median study: study 0.
    costs = [90, 80, 70, 40, 95] + [50, 60, 10, 30, 20] + [None] * 5
    tuned = tuning.tuned_trials(_medians(costs), "steps")
    assert tuned[schema.TRIAL].tolist() == [3]
    # Without studies the same trials tune to the overall best.
    plain = _medians(costs).drop(columns="study")
    assert tuning.tuned_trials(plain, "steps")[schema.TRIAL].tolist() == [7]


def test_expected_best_is_the_mean_best_over_every_subset():
    scores = np.array([0.9, 0.1, 0.5, 0.0, 0.7])
    for k in range(1, 6):
        subsets = itertools.combinations(scores, k)
        exact = np.mean([max(s) for s in subsets])
        assert budget.expected_best(scores, k) == pytest.approx(exact, rel=1e-12)
    with pytest.raises(ValueError, match="k must be"):
        budget.expected_best(scores, 6)


def test_budget_curves_rise_to_the_best_trial():
    lanes = _medians([90, 80, 70, 40, 95] + [50, 60, 10, 30, 20] + [None] * 5)
    curves = budget.budget_curves(lanes, "steps")
    scores = budget.trial_scores(lanes, "steps")["trial_score"]
    values = curves["expected_best_score"].to_numpy()
    assert (np.diff(values) >= 0).all()
    assert values[-1] == pytest.approx(scores.max()) == pytest.approx(1.0)
    assert values[0] == pytest.approx(scores.mean(), abs=5e-5)  # kept to four decimals


@pytest.fixture(scope="module")
def random_folder(tmp_path_factory):
    """The issue's command, shortened: random:16 on two problems x two optimizers."""
    out = tmp_path_factory.mktemp("random") / "out"
    status = main(
        [
            "run",
            "--protocol",
            "random:16",
            "--problems",
            "quadratic_20d_cond1e3",
            "rosenbrock_2d",
            "--optimizers",
            "adam",
            "momentum",
            "--steps",
            "400",
            "--seeds",
            "1",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    return out


@pytest.mark.slow
def test_random_search_summary_lists_every_tuned_hyperparameter(random_folder):
    summary = pd.read_csv(random_folder / "summary.csv")
    runs = pd.read_csv(random_folder / "runs.csv.gz")
    assert len(summary) == 4
    for pick in summary.itertuples():
        space = OPTIMIZERS[pick.optimizer].space()
        chosen = {name: getattr(pick, name) for name in space}
        assert all(np.isfinite(v) for v in chosen.values()), chosen
        # The eval lanes re-ran exactly the chosen trial's setting.
        lanes = runs[(runs.problem == pick.problem) & (runs.optimizer == pick.optimizer)]
        evals = lanes[lanes.role == "eval"]
        assert len(evals) == 10 and (evals.trial == pick.trial).all()
        tuned = lanes[(lanes.role == "tune") & (lanes.trial == pick.trial)].iloc[0]
        for name in space:
            assert (evals[name] == tuned[name]).all()
        assert lanes[lanes.role == "tune"].trial.nunique() == 16
    assert json.loads((random_folder / "meta.json").read_text())["spec"]["protocol"] == "random:16"


@pytest.mark.slow
def test_random_search_draws_budget_curves_and_heat_maps(random_folder):
    curves = pd.read_csv(random_folder / "budget_curves.csv.gz")
    assert set(curves["trials"]) == set(range(1, 17))
    for name in ["budget_curves.png"] + [
        f"plots/{kind}_{p}.png"
        for kind in ("budget", "heat_map")
        for p in ("quadratic_20d_cond1e3", "rosenbrock_2d")
    ]:
        assert (random_folder / name).read_bytes()[:8] == PNG, name


@pytest.mark.slow
@pytest.mark.parametrize("protocol, trials", [("algoperf", 15), ("defaults", 1)])
def test_algoperf_and_defaults_run_the_same_way(tmp_path, protocol, trials):
    spec = SuiteSpec(
        problems=("rosenbrock_2d",),
        optimizers=("adam",),
        seeds=1,
        steps={"rosenbrock_2d": 40},
        protocol=protocol,
    )
    tables = suite.run_suite(spec, tmp_path / "out", progress=io.StringIO())
    runs = tables["runs"]
    assert runs[runs.role == "tune"].trial.nunique() == trials
    assert (schema.STUDY in runs) == (protocol == "algoperf")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(summary) == 1
    if protocol == "defaults":
        assert summary["learning_rate"].iloc[0] == OPTIMIZERS["adam"].defaults()["learning_rate"]


@pytest.mark.slow
def test_cross_validation_beside_a_closed_form_problem_tunes_each_on_its_own_score(tmp_path):
    """A --cv run holds a cv_loss column, empty on the problems without a data set: those
    are tuned on f - f*, and the setting tuned from the file is the one re-run."""
    problems = ("logistic_breast_cancer", "rosenbrock_2d")
    spec = SuiteSpec(
        problems=problems,
        optimizers=("sgd",),
        seeds=1,
        eval_seeds=2,
        steps=dict.fromkeys(problems, 20),
        folds=2,
        protocol="algoperf",
    )
    suite.run_suite(spec, tmp_path / "out", progress=io.StringIO())
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("problem")
    assert summary.loc["logistic_breast_cancer", "tuned_on"] == "cv_loss"
    assert summary.loc["rosenbrock_2d", "tuned_on"] == "final_suboptimality"
    assert (tmp_path / "out" / "TABLES.md").exists()


def test_the_command_line_refuses_an_unknown_protocol(tmp_path, capsys):
    assert main(["run", "--protocol", "bayes", "--out", str(tmp_path / "x")]) == 2
    assert "--protocol: unknown protocol 'bayes'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
