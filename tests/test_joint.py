"""Joint folders (bench/results/joint.py, `bench join`, `bench run --suite all`): one
ranking over results folders of different suites, drawn from the members' own tables."""

import json
import shutil

import pandas as pd
import pytest

from bench.cli import main


def _run(*args) -> None:
    assert main(["run", "--steps", "40", "--jobs", "1", "--no-cache", *args]) == 0


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two members of different suites and rules: main (beale, rosenbrock_2d x adam, sgd)
    and bbob (bbob_f01_2d x adam, lion)."""
    root = tmp_path_factory.mktemp("members")
    _run("--problems", "beale", "rosenbrock_2d", "--optimizers", "adam", "sgd",
         "--out", str(root / "main"))  # fmt: skip
    _run("--suite", "bbob", "--problems", "bbob_f01_2d", "--optimizers", "adam", "lion",
         "--out", str(root / "bbob"))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def joined(members):
    out = members / "all"
    assert main(["join", str(members / "main"), str(members / "bbob"), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_a_joint_folder_ranks_every_problem_of_its_members_and_holds_no_lanes(members, joined):
    summary = pd.read_csv(joined / "summary.csv")
    assert set(summary["problem"]) == {"beale", "rosenbrock_2d", "bbob_f01_2d"}
    assert set(pd.read_csv(joined / "ranking.csv")["optimizer"]) == {"adam", "sgd", "lion"}
    # each member's tuned pairs, as the member tuned them
    for name in ("main", "bbob"):
        own = pd.read_csv(members / name / "summary.csv")
        mine = summary.merge(own, on=["problem", "optimizer"], suffixes=("", "_own"))
        assert len(mine) == len(own) and (mine["trial"] == mine["trial_own"]).all()
    assert not (joined / "runs.csv.gz").exists() and not (joined / "curves.csv.gz").exists()
    record = json.loads((joined / "meta.json").read_text())
    assert [m["path"] for m in record["members"]] == ["../main", "../bbob"]
    assert all(len(m["runs_sha256"]) == 64 and m["fingerprint"] for m in record["members"])


@pytest.mark.slow
def test_a_rule_a_member_never_ran_is_scored_as_not_run_there_not_as_failing(joined):
    tables = (joined / "TABLES.md").read_text()
    assert "not in the suite of main" in tables and "not in the suite of bbob" in tables
    ranking = pd.read_csv(joined / "ranking.csv").set_index("optimizer")
    # lion ran one problem of three, sgd two: their coverage says so
    assert ranking.loc["adam", "coverage"] == 1
    assert ranking.loc["sgd", "coverage"] == pytest.approx(2 / 3)
    assert ranking.loc["lion", "coverage"] == pytest.approx(1 / 3)


@pytest.mark.slow
def test_the_scores_are_broken_down_by_the_members_groups(joined):
    groups = pd.read_csv(joined / "groups.csv")
    assert set(groups["group"]) >= {"main", "bbob: separable"}
    assert (joined / "runtime_ecdf.png").exists() and (joined / "win_rate.csv").exists()


@pytest.mark.slow
def test_bench_plot_draws_a_joint_folder_again_from_its_members(members, joined, tmp_path):
    before = (joined / "ranking.csv").read_text()
    (joined / "ranking.csv").unlink()
    assert main(["plot", str(joined)]) == 0
    assert (joined / "ranking.csv").read_text() == before
    # moved with its members, it still finds them
    moved = tmp_path / "moved"
    shutil.copytree(members, moved)
    assert main(["plot", str(moved / "all")]) == 0
    assert (moved / "all" / "ranking.csv").read_text() == before


@pytest.mark.slow
def test_join_refuses_what_cannot_be_a_joint_folder(members, joined, tmp_path, capsys):
    main_folder, bbob = str(members / "main"), str(members / "bbob")
    cases = {
        "two results folders or more": ["join", main_folder, "--out", str(tmp_path / "a")],
        "an --out of its own": ["join", main_folder, bbob, "--out", main_folder],
        "not a results folder": ["join", main_folder, str(tmp_path), "--out", str(tmp_path / "b")],
        "is in two members": ["join", main_folder, main_folder, "--out", str(tmp_path / "c")],
    }
    for message, argv in cases.items():
        capsys.readouterr()
        assert main(argv) == 2, message
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # a results folder of its own is never replaced by a joint one
    assert main(["join", main_folder, bbob, "--out", bbob]) == 2
    assert (members / "bbob" / "runs.csv.gz").exists()


def test_run_suite_all_needs_an_out_and_runs_whole_suites(capsys):
    assert main(["run", "--suite", "all"]) == 2
    assert "--suite all needs an --out" in capsys.readouterr().err
    assert main(["run", "--suite", "all", "--problems", "beale", "--out", "/tmp/x"]) == 2
    assert "drop --problems" in capsys.readouterr().err
