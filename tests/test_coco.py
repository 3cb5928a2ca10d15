"""`bench coco`: a results folder's BBOB evaluation runs in COCO's data format.

The fast tests export a small folder written here by hand, whose every trace is worked
out below from its numbers; the slow ones export a real `--suite bbob` run and compare
each run's data with its lane in runs.csv.gz, read with pandas; the reference test runs
COCO's post-processing, cocopp, on that export (the `bbob` extra).
"""

import io
import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import coco, suite
from bench import spec as suite_spec
from bench.cli import main
from bench.results import schema
from problems import bbob

# --- a folder written by hand ---------------------------------------------------------

F0 = 10.0  # bbob_f01_2d's start value: level targets 1, 0.1, 0.01, 1e-4 and 1e-6
NEVER = -1


def lane(
    problem,
    optimizer,
    seed,
    role="eval",
    levels=(NEVER,) * 5,
    hit=NEVER,
    lasting=NEVER,
    end=50,
    best=1.0,
    start=12.0,
):
    """A row of runs.csv.gz: the costs of lasting success at the levels 1e-1 .. 1e-7, of
    the first hit and of lasting success at the target 1e-5, the last evaluation, the
    best f - f* and f at the start."""
    row = {
        "problem": problem,
        "optimizer": optimizer,
        "trial": 0,
        "learning_rate": 0.1,
        "seed": seed,
        "role": role,
        "f_star": 0.0,
        "target": 1e-5,
        "steps": end,
        "start_loss": start,
        "final_loss": best,
        "best_loss": best,
        "final_suboptimality": best,
        "best_suboptimality": best,
        "final_grad_norm": 1.0,
        "final_grad_evals": float(end),
        "steps_to_target": lasting,
        "grad_evals_to_target": float(lasting),
        "steps_to_first_hit": hit,
        "grad_evals_to_first_hit": float(hit),
    }
    for name, cost in zip(schema.LEVELS, levels, strict=True):
        row[schema.level_column("steps", name)] = cost
        row[schema.level_column("grad_evals", name)] = float(cost)
    return row | {"diverged": False}


LANES = [
    # adam on instance 6: down the levels, then the target, then a better end.
    lane("bbob_f01_2d", "adam", 1000, levels=(3, 10, 12, NEVER, NEVER), hit=20, best=2e-6),
    # adam on instance 7: at two levels from the start (0.05); the level 1e-5 (1e-4) comes
    # after the target's first hit, which already beat it; the end rounds below f*.
    lane(
        "bbob_f01_2d",
        "adam",
        1001,
        levels=(0, 0, 4, 9, 15),
        hit=8,
        lasting=9,
        best=-3e-8,
        start=0.05,
    ),
    # sgd on instance 6: one level, after its first evaluation, then a better end.
    lane("bbob_f01_2d", "sgd", 1000, levels=(1, NEVER, NEVER, NEVER, NEVER), best=0.5),
    # sgd on instance 7: touched the target but ended above it, and recorded no better.
    lane("bbob_f01_2d", "sgd", 1001, levels=(5, 6, 8, NEVER, NEVER), hit=30, best=2e-5),
    # A tuning lane, not exported.
    lane("bbob_f01_2d", "adam", 0, role="tune", levels=(1, 2, 3, 4, 5), hit=4, best=0.0),
    # A BBOB problem with tuning lanes only, and a problem of another source.
    lane("bbob_f02_5d", "adam", 0, role="tune"),
    lane("rosenbrock_2d", "adam", 1000),
]
# What each run's data file holds, worked out by hand from LANES: (evaluations, f - fopt).
# Each begins at COCO's first evaluation, 1, where the start and any cost of 0 or 1 fall.
TRACES = {
    ("adam", 6): [(1, 12.0), (3, 1.0), (10, 0.1), (12, 0.01), (20, 1e-5), (50, 2e-6)],
    ("adam", 7): [(1, 0.05), (4, 0.01), (8, 1e-5), (15, 1e-6), (50, 0.0)],
    ("sgd", 6): [(1, 1.0), (50, 0.5)],
    ("sgd", 7): [(1, 12.0), (5, 1.0), (6, 0.1), (8, 0.01), (30, 1e-5)],
}


def write_folder(folder: Path, lanes: list[dict], problems: list[tuple]) -> Path:
    """A results folder holding `lanes` and `problems` (name, dim, f0, tags, why the
    run left it out)."""
    folder.mkdir(parents=True)
    pd.DataFrame(lanes).to_csv(folder / "runs.csv.gz", index=False)
    columns = ["problem", "dim", "f0", "tags", "skipped"]
    table = pd.DataFrame(problems, columns=columns).assign(f_star=0.0)
    table.to_csv(folder / "problems.csv", index=False)
    return folder


PROBLEMS = [
    ("bbob_f01_2d", 2, F0, "bbob separable", None),
    ("bbob_f02_5d", 5, 1e6, "bbob separable", None),
    ("rosenbrock_2d", 2, 24.2, "nonconvex", None),
    ("bbob_f03_10d", 10, None, "bbob separable", "more than 5 parameters (--max-dim)"),
]


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_folder(tmp_path / "results", LANES, PROBLEMS)


def read_dat(path: Path) -> list[list[tuple[int, float]]]:
    """The blocks of a COCO data file: per run, (evaluations, best f - fopt) per line."""
    blocks: list[list[tuple[int, float]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("%"):
            blocks.append([])
        else:
            evaluations, constraints, value = line.split()
            assert constraints == "0"
            blocks[-1].append((int(evaluations), float(value)))
    return blocks


def read_info(path: Path) -> list[dict]:
    """The blocks of a COCO index file: header fields, comment, data file, and the runs
    as (instance, evaluations, f - fopt)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert len(lines) % 3 == 0, lines
    blocks = []
    for header, comment, data in zip(lines[::3], lines[1::3], lines[2::3], strict=True):
        fields = dict(part.split(" = ", 1) for part in header.split(", "))
        data_file, *entries = data.split(", ")
        runs = []
        for entry in entries:
            instance, result = entry.split(":")
            evaluations, value = result.split("|")
            runs.append((int(instance), int(evaluations), float(value)))
        blocks.append({"fields": fields, "comment": comment, "file": data_file, "runs": runs})
    return blocks


def test_each_optimizer_gets_a_coco_folder_named_as_coco_names_its_files(folder, tmp_path):
    exported = coco.export(folder, tmp_path / "coco")
    assert exported.folders == {"adam": tmp_path / "coco/adam", "sgd": tmp_path / "coco/sgd"}
    assert exported.runs == {"adam": 2, "sgd": 2}
    for optimizer in ("adam", "sgd"):
        written = {p.relative_to(tmp_path / "coco" / optimizer).as_posix()
                   for p in (tmp_path / "coco" / optimizer).rglob("*") if p.is_file()}  # fmt: skip
        assert written == {
            "bbobexp_f1.info",
            "data_f1/bbobexp_f1_DIM2.dat",
            "data_f1/bbobexp_f1_DIM2.tdat",
        }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "results"]  # no staging left


def test_the_index_file_names_the_function_dimension_algorithm_and_each_instance(folder, tmp_path):
    coco.export(folder, tmp_path / "coco")
    (block,) = read_info(tmp_path / "coco/adam/bbobexp_f1.info")
    assert block["fields"] == {
        "suite": "'bbob'",
        "funcId": "1",
        "DIM": "2",
        "Precision": "1.000e-08",
        "algId": "'adam'",
        "coco_version": "'2.8.2'",
        "logger": "'bbob'",
        "data_format": "'bbob-new2'",
    }
    assert block["comment"].startswith("% ") and "gradient evaluations" in block["comment"]
    assert block["file"] == "data_f1/bbobexp_f1_DIM2.dat"
    # Seeds 1000 and 1001 play instances 6 and 7; each ends at evaluation 50 with its best.
    assert block["runs"] == [(6, 50, 2e-6), (7, 50, 0.0)]
    (block,) = read_info(tmp_path / "coco/sgd/bbobexp_f1.info")
    assert block["runs"] == [(6, 50, 0.5), (7, 50, 1e-5)]


def test_each_run_holds_the_running_best_of_its_recorded_hits_and_its_end(folder, tmp_path):
    coco.export(folder, tmp_path / "coco")
    for optimizer in ("adam", "sgd"):
        blocks = read_dat(tmp_path / f"coco/{optimizer}/data_f1/bbobexp_f1_DIM2.dat")
        assert blocks == [TRACES[optimizer, 6], TRACES[optimizer, 7]]


def test_the_tdat_file_ends_each_run_at_its_last_evaluation(folder, tmp_path):
    coco.export(folder, tmp_path / "coco")
    blocks = read_dat(tmp_path / "coco/sgd/data_f1/bbobexp_f1_DIM2.tdat")
    assert blocks == [TRACES["sgd", 6], [*TRACES["sgd", 7], (50, 1e-5)]]


def test_problems_of_other_sources_and_without_evaluation_lanes_are_left_out(folder, tmp_path):
    exported = coco.export(folder, tmp_path / "coco")
    assert exported.problems == ["bbob_f01_2d"]
    assert exported.left_out == {
        "bbob_f02_5d": "no evaluation lanes",
        "rosenbrock_2d": "not a BBOB problem",
        "bbob_f03_10d": "not run: more than 5 parameters (--max-dim)",
    }


def test_a_bbob_name_is_read_by_problems_bbob_and_any_other_name_is_none():
    for name in bbob.names():
        assert coco.bbob_problem(name) == bbob.parse(name)
    for name in ("rosenbrock_2d", "bbob_f25_2d", "bbob_f1_2d", "bbob_f01_2d_x", "bbob_f00_5d"):
        assert coco.bbob_problem(name) is None


def test_bad_folder_or_out_raises_a_value_error_naming_the_argument(folder, tmp_path):
    with pytest.raises(ValueError, match="^folder .*missing is not a folder"):
        coco.export(tmp_path / "missing", tmp_path / "coco")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("")
    with pytest.raises(ValueError, match="^out .*full exists and is not empty"):
        coco.export(folder, tmp_path / "full")
    with pytest.raises(ValueError, match="^folder .* has no runs.csv.gz"):
        coco.export(tmp_path / "full", tmp_path / "coco")
    older = [{k: v for k, v in row.items() if k != "start_loss"} for row in LANES]
    with pytest.raises(ValueError, match="^folder .*older.* records no start_loss"):
        coco.export(write_folder(tmp_path / "older", older, PROBLEMS), tmp_path / "coco")
    assert not (tmp_path / "coco").exists()


def test_an_empty_out_folder_is_written_into(folder, tmp_path):
    (tmp_path / "coco").mkdir()
    coco.export(folder, tmp_path / "coco")
    assert (tmp_path / "coco/adam/bbobexp_f1.info").is_file()


def test_bench_coco_writes_the_export_and_names_what_it_left_out(folder, tmp_path, capsys):
    assert main(["coco", str(folder), "--out", str(tmp_path / "coco")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path / 'coco/adam'}: 2 runs of adam"
    assert lines[1] == f"{tmp_path / 'coco/sgd'}: 2 runs of sgd"
    assert lines[2].startswith("left out 3 problem(s): ") and "rosenbrock_2d" in lines[2]
    assert lines[3].startswith("post-process: python -m cocopp ")
    assert (tmp_path / "coco/sgd/data_f1/bbobexp_f1_DIM2.dat").is_file()


def _exits_2_with_one_line(argv, capsys, *words):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert all(word in lines[0] for word in words), lines[0]
    assert captured.out == ""


def test_bench_coco_exits_2_on_a_missing_folder_or_a_used_out(folder, tmp_path, capsys):
    out = tmp_path / "coco"
    _exits_2_with_one_line(["coco", str(tmp_path / "nope"), "--out", str(out)], capsys, "nope")
    out.mkdir()
    (out / "kept").write_text("mine")
    _exits_2_with_one_line(["coco", str(folder), "--out", str(out)], capsys, str(out), "empty")
    assert [p.name for p in out.iterdir()] == ["kept"]


def test_a_problem_whose_levels_cannot_be_placed_is_left_out(tmp_path):
    no_start = write_folder(
        tmp_path / "results", LANES[:1], [("bbob_f01_2d", 2, None, "bbob separable", None)]
    )
    with pytest.raises(ValueError, match="^folder .*bbob_f01_2d: problems.csv records no f0"):
        coco.export(no_start, tmp_path / "coco")
    assert not (tmp_path / "coco").exists()


def test_bench_coco_exits_2_on_a_folder_without_bbob_problems(tmp_path, capsys):
    other = write_folder(tmp_path / "main", [lane("rosenbrock_2d", "adam", 1000)], [PROBLEMS[2]])
    out = tmp_path / "coco"
    _exits_2_with_one_line(["coco", str(other), "--out", str(out)], capsys, "no BBOB problem")
    assert not out.exists()


# --- a real run -----------------------------------------------------------------------

RUN_PROBLEMS = ("bbob_f01_2d", "bbob_f08_5d")
RUN_OPTIMIZERS = ("adam", "sgd")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """`bench run --suite bbob --problems bbob_f01_2d bbob_f08_5d --optimizers adam sgd`."""
    spec = suite_spec.narrowed(
        suite_spec.load(suite_spec.SUITES["bbob"]),
        problems=RUN_PROBLEMS,
        optimizers=RUN_OPTIMIZERS,
    )
    out = tmp_path_factory.mktemp("bbob") / "results"
    suite.run_suite(spec, out, jobs=1, progress=io.StringIO())
    return out


@pytest.fixture(scope="module")
def run_export(run_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coco") / "coco"
    coco.export(run_folder, out)
    return out


@pytest.fixture(scope="module")
def eval_lanes(run_folder) -> pd.DataFrame:
    runs = pd.read_csv(run_folder / "runs.csv.gz")
    return runs[runs["role"] == "eval"]


def recorded(row, f0: float) -> list[tuple[float, float]]:
    """What runs.csv.gz records of a lane: (cost, the f - f* it was at, at most), a cost
    of 0 (the start) counted as COCO counts the start's evaluation, the first."""
    taus = {"1e-1": 1e-1, "1e-2": 1e-2, "1e-3": 1e-3, "1e-5": 1e-5, "1e-7": 1e-7}
    points = [(0, row["start_loss"] - row["f_star"])]
    points += [(row[f"grad_evals_to_tau_{name}"], tau * f0) for name, tau in taus.items()]
    points += [(row["grad_evals_to_first_hit"], row["target"])]
    points += [(row["grad_evals_to_target"], row["target"])]
    points = [(max(cost, 1), value) for cost, value in points if cost >= 0]
    return [*points, (row["final_grad_evals"], max(row["best_suboptimality"], 0.0))]


def close(a: float, b: float) -> bool:
    """Equal to the 10 significant digits a data file holds."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)


@pytest.mark.slow
def test_a_real_run_is_exported_with_its_held_out_instances(run_export, eval_lanes):
    for optimizer in RUN_OPTIMIZERS:
        home = run_export / optimizer
        for function, dim in ((1, 2), (8, 5)):
            (block,) = read_info(home / f"bbobexp_f{function}.info")
            assert block["fields"]["funcId"] == str(function)
            assert block["fields"]["DIM"] == str(dim)
            assert block["fields"]["algId"] == f"'{optimizer}'"
            assert [run[0] for run in block["runs"]] == list(range(6, 16))
            assert (home / block["file"]).is_file()
            assert (home / block["file"]).with_suffix(".tdat").is_file()
            lanes = eval_lanes[
                (eval_lanes["problem"] == bbob.name(function, dim))
                & (eval_lanes["optimizer"] == optimizer)
            ].sort_values("seed")
            assert [run[1] for run in block["runs"]] == list(lanes["final_grad_evals"])


@pytest.mark.slow
def test_each_real_run_equals_its_lane_in_runs_csv(run_folder, run_export, eval_lanes):
    f0 = pd.read_csv(run_folder / "problems.csv").set_index("problem")["f0"].to_dict()
    for (name, optimizer), lanes in eval_lanes.groupby(["problem", "optimizer"]):
        function, dim = bbob.parse(str(name))
        path = run_export / str(optimizer) / f"data_f{function}/bbobexp_f{function}_DIM{dim}"
        blocks, ends = read_dat(path.with_suffix(".dat")), read_dat(path.with_suffix(".tdat"))
        assert len(blocks) == len(ends) == len(lanes) == 10
        rows = lanes.sort_values("seed").iterrows()
        for block, end, (_, row) in zip(blocks, ends, rows, strict=True):
            points = recorded(row, float(f0[name]))
            seen = (name, optimizer, row["seed"])
            # Every line is a point the lane records, each later and better than the last ...
            for evaluations, value in block:
                assert any(e == evaluations and close(v, value) for e, v in points), seen
            assert all(a[0] < b[0] and a[1] > b[1] for a, b in itertools.pairwise(block)), seen
            # ... the first line at or below any recorded value is at the lane's first cost
            # to it (what COCO's readers take as the run's cost to that target) ...
            for _, value in points:
                first = next(e for e, f in block if f <= value or close(f, value))
                assert first == min(c for c, v in points if v <= value), seen
            # ... and the run ends at its last evaluation with the best value recorded.
            assert end[-1][0] == row["final_grad_evals"]
            assert close(end[-1][1], min(v for _, v in points)), seen


# --- cocopp ---------------------------------------------------------------------------

# Runs cocopp in a process of its own (it sets matplotlib's and its own global settings):
# the post-processing into argv[2], then the numbers it computes from the data, as JSON
# into argv[3].
COCOPP = textwrap.dedent(
    """
    import json, sys
    import matplotlib
    matplotlib.use("Agg")
    import cocopp
    folders, output, numbers = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    cocopp.main(["--no-interactive", "-o", output, *folders])
    found = {}
    for folder in folders:
        for ds in cocopp.load(folder):
            found[f"{ds.algId} f{ds.funcId} {ds.dim}"] = {
                "instances": [int(i) for i in ds.instancenumbers],
                "successes": int(ds.detSuccesses([1e-5])[0]),
                "ert": float(ds.detERT([1e-5])[0]),
                "evals": [float(e) for e in ds.detEvals([1e-5])[0]],
            }
    with open(numbers, "w") as stream:
        json.dump(found, stream)
    """
)
# What cocopp says of data it finds odd; none may be said of the export. (It does say
# that the first evaluation was not recorded, and that 10 instances are fewer than 15.)
FORMAT_COMPLAINTS = (
    "disagree",
    "faulty",
    "ill-finalized",
    "not monotone",
    "not a valid number",
    "Incomplete line",
    "referenced several times",
    "Traceback",
)


@pytest.mark.slow
@pytest.mark.reference
def test_cocopp_reads_the_export_and_counts_what_runs_csv_records(run_export, eval_lanes, tmp_path):
    import importlib.util

    if importlib.util.find_spec("cocopp") is None:
        pytest.skip("cocopp: the bbob extra, pip install -e '.[bbob]'")
    folders = ",".join(str(run_export / optimizer) for optimizer in RUN_OPTIMIZERS)
    output, numbers = tmp_path / "ppdata", tmp_path / "numbers.json"
    done = subprocess.run(
        [sys.executable, "-c", COCOPP, folders, str(output), str(numbers)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=600,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert not [word for word in FORMAT_COMPLAINTS if word in said], said[-3000:]
    # Its runtime ECDF figures, over both algorithms, per dimension.
    assert list(output.rglob("pprldmany_05D_noiselessall.svg")), sorted(output.rglob("*"))
    found = json.loads(numbers.read_text())
    assert len(found) == len(RUN_OPTIMIZERS) * len(RUN_PROBLEMS)
    for (name, optimizer), lanes in eval_lanes.groupby(["problem", "optimizer"]):
        function, dim = bbob.parse(name)
        numbers_of = found[f"{optimizer} f{function} {dim}"]
        lanes = lanes.sort_values("seed")
        assert numbers_of["instances"] == list(range(6, 16))
        # At the own target 1e-5 (no level of these problems lies at or below it), a run's
        # cost is its first hit; ERT adds the last evaluation of each run that missed.
        hits = lanes["grad_evals_to_first_hit"]
        reached = hits >= 0
        assert numbers_of["successes"] == reached.sum()
        expected = [h if h >= 0 else math.nan for h in hits]
        np.testing.assert_array_equal(numbers_of["evals"], expected)
        if reached.any():
            spent = hits[reached].sum() + lanes["final_grad_evals"][~reached].sum()
            assert numbers_of["ert"] == pytest.approx(spent / reached.sum(), rel=1e-12)
        else:
            assert numbers_of["ert"] == math.inf


# --- iohinspector ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.reference
def test_iohinspector_reads_each_run_of_the_export_as_runs_csv_records_it(run_export, eval_lanes):
    """IOHprofiler's reader finds where a run begins by its line at evaluation 1: each lane
    is one run, in the order of its instance, ending at its last evaluation, first at
    the own target 1e-5 where runs.csv.gz says (its index file gives no instance)."""
    ih = pytest.importorskip("iohinspector", reason="the ioh extra: pip install -e '.[ioh]'")
    manager = ih.DataManager()
    manager.add_folder(str(run_export))
    data = manager.load(monotonic=False, include_meta_data=True).to_pandas()
    assert len(data.groupby(["algorithm_name", "function_id", "dimension"])) == 4
    for (name, optimizer), lanes in eval_lanes.groupby(["problem", "optimizer"]):
        function, dim = bbob.parse(str(name))
        read = data[
            (data["algorithm_name"] == optimizer)
            & (data["function_id"] == function)
            & (data["dimension"] == dim)
        ]
        runs = read.groupby("run_id")
        lanes = lanes.sort_values("seed")
        assert runs.ngroups == len(lanes) == 10
        assert (runs["evaluations"].first() == 1).all()
        assert list(runs["evals"].first()) == list(lanes["final_grad_evals"])
        for (_, points), hit in zip(runs, lanes["grad_evals_to_first_hit"], strict=True):
            at = points.loc[points["raw_y"] <= 1e-5, "evaluations"]
            assert (at.min() if len(at) else -1) == (max(hit, 1) if hit >= 0 else -1)
