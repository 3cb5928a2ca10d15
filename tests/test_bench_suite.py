"""`run_suite` end to end on a tiny spec: files, determinism, skipping, divergence, atomicity."""

import io
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import suite
from bench.cli import main
from bench.results import schema
from bench.spec import SuiteSpec
from bench.sweep.runner import run_sweep
from optimizers import OPTIMIZERS, OptimizerSpec, sgd

PNG = b"\x89PNG\r\n\x1a\n"
# lr 1e3 blows every optimizer up on these problems; 1e-4 and 3e-4 do not.
GRID = (1e-4, 3e-4, 1e3)
STOCHASTIC = "least_squares_diabetes_batch32"
LAYERED = "mlp_digits_sigmoid_32"
FULL_BATCH_ONLY = OptimizerSpec(sgd, GRID, deterministic_only=True)
TINY = SuiteSpec(
    problems=("rosenbrock_2d", LAYERED, STOCHASTIC),
    optimizers=("sgd", "adam", "full_batch_sgd"),
    seeds=2,
    grid={name: GRID for name in ("sgd", "adam", "full_batch_sgd")},
    steps=dict.fromkeys(("rosenbrock_2d", LAYERED, STOCHASTIC), 12),
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The tiny suite run twice: two pairs in flight, then one at a time."""
    root = tmp_path_factory.mktemp("suite")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(OPTIMIZERS, "full_batch_sgd", FULL_BATCH_ONLY)
        suite.run_suite(TINY, root / "a", jobs=2, progress=io.StringIO())
        suite.run_suite(TINY, root / "b", jobs=1, progress=io.StringIO())
    return root / "a", root / "b"


@pytest.mark.slow
def test_the_folder_holds_every_table_and_plot(folders):
    out = folders[0]
    for name in ["runs", "curves", "summary", "skipped", "paths", "layer_grad_norms"]:
        assert len(pd.read_csv(out / schema.file_name(name))) > 0, name
    pngs = ["convergence.png", "performance_profile.png", "plots/paths_rosenbrock_2d.png"]
    pngs += [f"plots/grad_norms_{LAYERED}.png"]
    pngs += [
        f"plots/{kind}_{p}.png" for kind in ("convergence", "sensitivity") for p in TINY.problems
    ]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG, name
    tables = (out / "TABLES.md").read_text()
    assert "## Overall ranking" in tables
    assert all(f"## {p}" in tables for p in TINY.problems)
    meta = json.loads((out / "meta.json").read_text())
    for key in ["python", "jax", "jaxlib", "optax", "platform", "device", "git_commit", "date"]:
        assert meta[key], key
    assert meta["dtype"] == "float32"
    assert meta["compile_seconds"] > 0 and meta["total_wall_seconds"] >= meta["compile_seconds"] / 2


@pytest.mark.slow
def test_runs_has_one_row_per_lane_and_curves_only_tuned_lanes(folders):
    runs = pd.read_csv(folders[0] / "runs.csv.gz")
    ran_pairs = 3 * 2 + 2  # full_batch_sgd skips the stochastic problem
    assert len(runs) == ran_pairs * (len(GRID) * TINY.seeds + TINY.eval_seeds)
    curves = pd.read_csv(folders[0] / "curves.csv.gz")
    summary = pd.read_csv(folders[0] / "summary.csv")
    tuned = curves.groupby(["problem", "optimizer"])["learning_rate"].unique()
    for row in summary.itertuples():
        assert list(tuned[row.problem, row.optimizer]) == [row.learning_rate]
    # 12 steps is a short run: every step is recorded, 0 .. 12.
    assert curves.groupby(["problem", "optimizer"]).size().eq(13).all()
    assert "median_test_accuracy" in summary.columns


@pytest.mark.slow
def test_a_pair_the_optimizer_cannot_run_is_skipped_and_listed(folders):
    skipped = pd.read_csv(folders[0] / "skipped.csv")
    assert skipped[["problem", "optimizer"]].values.tolist() == [[STOCHASTIC, "full_batch_sgd"]]
    runs = pd.read_csv(folders[0] / "runs.csv.gz")
    assert not ((runs.problem == STOCHASTIC) & (runs.optimizer == "full_batch_sgd")).any()
    assert "## Skipped pairs" in (folders[0] / "TABLES.md").read_text()


@pytest.mark.slow
def test_a_diverging_lane_is_flagged_and_spoils_no_neighbour(folders):
    runs = pd.read_csv(folders[0] / "runs.csv.gz")
    blown = runs[runs.learning_rate == 1e3]
    assert blown.diverged.all()
    rosen = runs[(runs.problem == "rosenbrock_2d") & (runs.optimizer == "sgd")]
    calm = rosen[(rosen.learning_rate < 1e3) & (rosen.role == "tune")]
    assert not calm.diverged.any() and np.isfinite(calm.final_loss).all()
    # The same lanes swept without the diverging learning rate: same numbers. float32
    # programs of different lane counts may vectorise differently, so a few ulps (1e-6
    # relative) are allowed; a NaN leaking across lanes would fail outright.
    alone = run_sweep("rosenbrock_2d", "sgd", [1e-4, 3e-4], seeds=2, steps=12)
    np.testing.assert_allclose(calm.final_loss, alone.losses[:, -1], rtol=1e-6)
    summary = pd.read_csv(folders[0] / "summary.csv")
    assert (summary.learning_rate < 1e3).all()
    assert np.isfinite(summary.median_final_suboptimality).all()
    assert (summary.diverged_share > 0).all()


def _without_timing(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if "seconds" in c])


@pytest.mark.slow
def test_two_runs_give_identical_tables_apart_from_timing(folders):
    a, b = folders
    names = sorted(p.name for p in a.glob("*.csv*"))
    assert names == sorted(p.name for p in b.glob("*.csv*"))
    assert "runs.csv.gz" in names
    for name in names:
        pd.testing.assert_frame_equal(_without_timing(a / name), _without_timing(b / name))
        assert _without_timing(a / name).to_csv() == _without_timing(b / name).to_csv()
    # summary.csv and TABLES.md report seconds to target: wall-clock, never reproduced.


@pytest.mark.slow
def test_plot_redraws_tables_and_figures_from_the_csv_alone(folders, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folders[0], copy)
    for generated in ["TABLES.md", "summary.csv", "convergence.png"]:
        (copy / generated).unlink()
    shutil.rmtree(copy / "plots")
    assert main(["plot", str(copy)]) == 0
    for name in ["TABLES.md", "summary.csv"]:
        assert (copy / name).read_bytes() == (folders[0] / name).read_bytes()
    assert (copy / "convergence.png").read_bytes()[:8] == PNG
    assert (copy / "plots" / "paths_rosenbrock_2d.png").read_bytes()[:8] == PNG


ONE_PAIR = SuiteSpec(
    problems=("rosenbrock_2d",), optimizers=("sgd",), seeds=1, steps={"rosenbrock_2d": 3}
)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("fail_in", ["sweep_pair", "meta.collect"])
def test_an_interrupted_run_leaves_the_previous_results_intact(
    folders, tmp_path, monkeypatch, fail_in
):
    out = tmp_path / "results"
    shutil.copytree(folders[0], out)
    before = _snapshot(out)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if fail_in == "sweep_pair":
        monkeypatch.setattr(suite, "sweep_pair", interrupt)
    else:  # after the CSV files and plots are written into the staging folder
        monkeypatch.setattr(suite.meta, "collect", interrupt)
    with pytest.raises(KeyboardInterrupt):
        suite.run_suite(ONE_PAIR, out, progress=io.StringIO())
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no debris


def test_a_folder_that_is_not_a_results_folder_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(suite.NotAResultsFolder):
        suite.run_suite(ONE_PAIR, tmp_path, progress=io.StringIO())
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_a_run_keeps_files_it_does_not_own_and_drops_its_stale_ones(folders, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(folders[0], out)
    (out / "PERF.md").write_text("another tool's report")
    assert (out / "layer_grad_norms.csv.gz").exists()
    suite.run_suite(ONE_PAIR, out, progress=io.StringIO())
    assert (out / "PERF.md").read_text() == "another tool's report"
    assert not (out / "layer_grad_norms.csv.gz").exists()  # ONE_PAIR has no layered model
    assert set(pd.read_csv(out / "runs.csv.gz").problem) == {"rosenbrock_2d"}


def test_the_model_families_are_a_suite_of_their_own():
    """The default suite runs every rule on the built-in problems, none a model family;
    bench/models.toml runs the model families, at its scale, with its optimizers; the
    command line's --optimizers replaces those."""
    from bench import spec
    from problems import MODELS, PROBLEMS

    main_suite = spec.load()
    assert set(main_suite.problems) == set(PROBLEMS)
    assert set(main_suite.optimizers) == set(OPTIMIZERS)
    models = spec.load(spec.SUITES["models"])
    assert set(models.problems) == set(MODELS)
    assert models.scale == "cpu"
    assert 1 <= len(models.optimizers) < len(OPTIMIZERS)
    assert not suite.is_full(asdict(models))
    chosen = spec.narrowed(models, optimizers=["lion"], scale="tiny")
    assert chosen.optimizers == ("lion",)
    assert chosen.pairs() == [(p, "lion") for p in models.problems]
    assert chosen.problem("cnn_digits").dim < models.problem("cnn_digits").dim


def test_optimize_comes_from_the_spec_file_and_the_command_line(monkeypatch):
    """suite.toml's `optimize` is the default (false: the fast compile); `--optimize` turns
    it on for one run, and a value other than true or false is refused."""
    from bench import cli, spec

    assert spec.load().optimize is False
    assert spec.narrowed(spec.load(), optimize=True).optimize is True
    assert spec.narrowed(spec.load(), optimize=None).optimize is False
    seen = {}
    monkeypatch.setattr(suite, "run_suite", lambda s, *a, **k: seen.setdefault("spec", s))
    cli.main(["run", "--quick", "--optimize", "--out", "unused"])
    assert seen["spec"].optimize is True


@pytest.mark.slow
def test_a_target_finer_than_the_dtype_resolves_is_skipped_not_scored_as_solved(tmp_path):
    # bfloat16's numbers near logistic regression's f* = 0.449 are 0.002 apart: its 1e-5
    # target is reached by rounding (25 steps, with a warning that f* is too high).
    spec = SuiteSpec(
        problems=("logistic_synthetic_200x10", "rosenbrock_2d"),
        optimizers=("sgd",),
        seeds=1,
        grid={"sgd": (1e-3,)},
        steps=dict.fromkeys(("logistic_synthetic_200x10", "rosenbrock_2d"), 5),
        dtype="bfloat16",
    )
    printed = io.StringIO()
    suite.run_suite(spec, tmp_path / "out", progress=printed)
    said = [line for line in printed.getvalue().splitlines() if "finer than" in line]
    assert said == [
        "logistic_synthetic_200x10: target 1e-05 is finer than bfloat16 resolves at "
        "f* = 0.4487 (spacing 0.002): success would be rounding; its pairs are skipped"
    ]
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped["problem"].tolist() == ["logistic_synthetic_200x10"]
    assert "finer than bfloat16 resolves at f* = 0.4487" in skipped["reason"].iloc[0]
    assert set(pd.read_csv(tmp_path / "out" / "runs.csv.gz")["problem"]) == {"rosenbrock_2d"}


def test_pairs_are_submitted_longest_first_by_the_seconds_an_earlier_run_recorded(tmp_path):
    units = [([("p", o)], ()) for o in ("a", "b", "c", "d")]
    assert suite._longest_first(units, tmp_path) == [0, 1, 2, 3]  # no earlier run
    pd.DataFrame(
        {
            "problem": "p",
            "optimizer": ["a", "a", "b", "c"],
            "compile_seconds": [1.0, 1.0, 0.5, 3.0],
            "run_seconds": [0.5, 0.5, 0.1, 9.0],
        }
    ).to_csv(tmp_path / "runs.csv.gz", index=False)
    # d is not recorded (its cost unknown): first; then c (12 s), a (1.5 s), b (0.6 s)
    assert suite._longest_first(units, tmp_path) == [3, 2, 0, 1]
    (tmp_path / "runs.csv.gz").write_bytes(b"not a table")
    assert suite._longest_first(units, tmp_path) == [0, 1, 2, 3]
