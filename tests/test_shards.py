"""`bench run --shard i/N` and `bench merge` of shards: the assignment of units to shards,
and shards merged against one run of the whole spec, on a tiny suite."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import executors, shards
from bench.cli import _check_executor, main, parser
from bench.results import compare, schema

SMALL = ["--problems", "rosenbrock_2d", "quadratic_20d_cond1e3", "--optimizers", "sgd", "adam"]
SMALL += ["--steps", "30", "--seeds", "2"]
PAIRS = [(p, o) for p in ("rosenbrock_2d", "quadratic_20d_cond1e3") for o in ("sgd", "adam")]


def _loads(costs, shard_of, count):
    return [sum(c for c, s in zip(costs, shard_of, strict=True) if s == i) for i in range(count)]


def test_every_unit_goes_to_exactly_one_shard_and_the_same_one_every_time():
    costs = [3.0, None, 7.5, 1.0, None, 2.0, 2.0, 9.0, None, 0.5]
    shard_of = shards.assign(costs, 3)
    assert shard_of == shards.assign(list(costs), 3)
    assert len(shard_of) == len(costs) and set(shard_of) == {0, 1, 2}


def test_units_of_unknown_cost_are_dealt_round_robin_in_order_first():
    costs = [None, 5.0, None, None, 1.0, None]
    shard_of = shards.assign(costs, 2)
    assert [shard_of[i] for i in (0, 2, 3, 5)] == [0, 1, 0, 1]
    assert shards.assign([None] * 5, 3) == [0, 1, 2, 0, 1]


def test_the_longest_units_go_to_the_lightest_shard():
    # LPT: 8 -> 0, 7 -> 1, 6 -> 2, 5 -> 2 (6 < 7 < 8), 4 -> 1, 3 -> 0, then 2 and 1 to
    # the shards of fewer units among equal loads (11, 11, 11): 13, 12, 11.
    costs = [4.0, 8.0, 5.0, 7.0, 6.0, 2.0, 3.0, 1.0]
    shard_of = shards.assign(costs, 3)
    assert shard_of[1] == 0 and shard_of[3] == 1 and shard_of[4] == 2 and shard_of[2] == 2
    loads = _loads(costs, shard_of, 3)
    assert loads == [13.0, 12.0, 11.0]
    assert max(loads) <= 4 / 3 * sum(costs) / 3  # Graham's bound on LPT
    # dealt in the spec's order instead, the same units are far less even
    naive = _loads(costs, [i % 3 for i in range(len(costs))], 3)
    assert max(naive) - min(naive) > max(loads) - min(loads)


def test_ties_are_broken_by_the_spec_order():
    assert shards.assign([2.0, 2.0, 2.0, 2.0], 2) == [0, 1, 0, 1]
    assert shards.assign([1.0, 2.0, 2.0, 1.0], 2) == [0, 0, 1, 1]


def test_a_unit_of_several_pairs_stays_whole_and_shard_0_holds_the_skipped_pairs():
    units = [[("p", "a"), ("p", "b"), ("p", "c")], [("q", "a")], [("q", "b")], [("q", "c")]]
    seconds = {("p", "a"): 1.0, ("p", "b"): 1.0, ("p", "c"): 1.0, ("q", "a"): 3.0}
    records = []
    for index in range(2):
        mine, record = shards.Shard(index, 2, seconds).deal(units, [("r", "a")])
        records.append(record)
        assert record["pairs"] == [
            *([list(pair) for i in mine for pair in units[i]]),
            *([["r", "a"]] if index == 0 else []),
        ]
    held = [tuple(pair) for record in records for pair in record["pairs"]]
    assert sorted(held) == sorted([pair for unit in units for pair in unit] + [("r", "a")])
    assert records[0]["assignment"] == records[1]["assignment"]
    with pytest.raises(shards.ShardError, match="4 units of work"):
        shards.Shard(0, 5).deal(units)


@pytest.mark.parametrize("shard", ["2/2", "1/1", "0/0", "x", "1/2/3", "-1/2", "1 of 2"])
def test_a_bad_shard_exits_2_in_one_line(shard, tmp_path, capsys):
    argv = ["run", *SMALL, f"--shard={shard}", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--shard" in error
    assert not (tmp_path / "out").exists()


CONFIG = """
[slurm]
partition = "cpu"
time = 90
parallelism = 4

[slurm.additional]
account = "proj"
qos = "high"
cpus-per-task = 8
exclusive = true
"""
EXECUTOR = ["--executor", "submitit", "--shards", "16"]


def _config(tmp_path, text=CONFIG) -> str:
    path = tmp_path / "slurm.toml"
    path.write_text(text)
    return str(path)


def _cluster(*options):
    return _check_executor(parser().parse_args(["run", *options]))


def test_a_slurm_config_gives_the_cluster_and_a_key_left_out_keeps_its_default(tmp_path):
    additional = {"account": "proj", "qos": "high", "cpus-per-task": 8, "exclusive": True}
    assert executors.load_cluster(_config(tmp_path)) == executors.Cluster("cpu", 90, 4, additional)
    assert executors.load_cluster(_config(tmp_path, "[slurm]\n")) == executors.Cluster()
    assert executors.load_cluster(_config(tmp_path, '[slurm]\npartition = "gpu"\n')) == (
        executors.Cluster(partition="gpu", minutes=240)
    )


def test_slurm_options_override_the_config_files_values(tmp_path):
    config = ["--slurm-config", _config(tmp_path)]
    assert _cluster(*EXECUTOR, *config).minutes == 90
    cluster = _cluster(*EXECUTOR, *config, "--slurm-time", "30", "--slurm-partition", "gpu")
    assert (cluster.partition, cluster.minutes, cluster.parallelism) == ("gpu", 30, 4)
    assert cluster.additional["account"] == "proj"
    assert _cluster(*EXECUTOR, *config, "--slurm-parallelism", "2").parallelism == 2
    assert _cluster(*EXECUTOR, "--slurm-time", "30") == executors.Cluster(minutes=30)
    assert _cluster(*EXECUTOR) == executors.Cluster()
    assert _cluster("--out", "x") is None


def test_the_cluster_is_what_submitit_submits_as_sbatch_options(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # the SLURM executor is built where `srun` is found; what it writes needs no cluster
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    cluster = executors.load_cluster(_config(tmp_path))
    executor = executors._executor("submitit", tmp_path / "logs", cluster)
    slurm = executor._executor
    slurm.parameters["map_count"] = 16  # what map_array sets for an array of 16 jobs
    lines = slurm._make_submission_file_text("command", "uid").splitlines()
    for line in ["partition=cpu", "time=90", "array=0-15%4", "account=proj", "qos=high"]:
        assert f"#SBATCH --{line}" in lines
    assert "#SBATCH --cpus-per-task=8" in lines and "#SBATCH --exclusive" in lines
    assert "#SBATCH --job-name=optbench" in lines
    plain = executors._executor("submitit", tmp_path / "logs", executors.Cluster())._executor
    assert "additional_parameters" not in plain.parameters
    assert "partition" not in plain.parameters and plain.parameters["time"] == 240


def test_the_jobs_of_an_array_are_given_no_executor_options(tmp_path, monkeypatch):
    given = []

    class Job:
        job_id, paths = "1", type("Paths", (), {"stderr": "log"})

        def result(self):
            return 0

    class Executor:
        def map_array(self, function, prepares, runs, jobs_args):
            given.extend(jobs_args)
            return [Job() for _ in jobs_args]

    monkeypatch.setattr(executors, "_executor", lambda *_: Executor())
    options = [*EXECUTOR, "--slurm-config", _config(tmp_path), "--slurm-time", "30"]
    options += ["--out", str(tmp_path / "out")]
    args = parser().parse_args(["run", *options])
    cluster = _check_executor(args)
    executors.submit(print, print, args, None, 2, "submitit", tmp_path / "out", cluster, None)
    assert [job.shard for job in given] == ["0/2", "1/2"]
    for job in given:  # each job is a plain `bench run --shard i/N`
        assert _check_executor(job) is None
        assert job.slurm_config is None and job.slurm_time is None


def test_a_bad_cluster_in_python_is_a_value_error_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="minutes must be a positive integer, got 0"):
        executors.Cluster(minutes=0)
    with pytest.raises(ValueError, match="parallelism must be a positive integer"):
        executors.Cluster(parallelism=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition must be a string"):
        executors.Cluster(partition=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="additional.mail-type must be a string"):
        executors.Cluster(additional={"mail-type": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="slurm.toml: \\[slurm\\] time must be"):
        executors.load_cluster(_config(tmp_path, "[slurm]\ntime = 0\n"))


@pytest.mark.parametrize(
    "text, why",
    [
        (None, "No such file"),
        ('[slurm\npartition = "cpu"\n', "not a TOML file"),
        ("\xff", "not a TOML file"),
        ('[slurm]\npartiton = "cpu"\n', "unknown key partiton in [slurm]"),
        ("[slurm]\n[other]\n", "one [slurm] table"),
        ("slurm = 3\n", "one [slurm] table"),
        ("[slurm]\npartition = 3\n", "partition must be a string, got 3"),
        ('[slurm]\ntime = "2h"\n', "time must be a positive integer, got '2h'"),
        ("[slurm]\ntime = 1.5\n", "time must be a positive integer"),
        ("[slurm]\ntime = 0\n", "time must be a positive integer, got 0"),
        ("[slurm]\nparallelism = -1\n", "parallelism must be a positive integer, got -1"),
        ("[slurm]\nparallelism = true\n", "parallelism must be a positive integer"),
        ('[slurm]\nadditional = "x"\n', "additional must be a table"),
        ("[slurm.additional]\nexclusive = false\n", "additional.exclusive must be"),
        ("[slurm.additional]\ntime = 5\n", "additional.time is set by the executor"),
        ('[slurm.additional]\njob_name = "x"\n', "additional.job_name is set by the executor"),
    ],
)
def test_a_bad_slurm_config_exits_2_in_one_line(text, why, tmp_path, capsys):
    path = tmp_path / "slurm.toml"
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    argv = ["run", *SMALL, *EXECUTOR, "--slurm-config", str(path), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: --slurm-config {path}: ")
    assert why in error
    assert not (tmp_path / "o").exists()


def test_a_slurm_config_without_an_executor_exits_2_in_one_line(tmp_path, capsys):
    argv = ["run", *SMALL, "--slurm-config", _config(tmp_path), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error == "error: --shards and --slurm-* options run through --executor\n"


def test_an_executor_without_submitit_exits_2_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # an import of it fails, as if missing
    argv = ["run", *SMALL, *EXECUTOR, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error == f"error: --executor submitit needs submitit: {executors.INSTALL}\n"
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The tiny suite run whole, and as 2 shards and as 3 shards."""
    root = tmp_path_factory.mktemp("shards")
    assert main(["run", *SMALL, "--out", str(root / "joint")]) == 0
    for count in (2, 3):
        for index in range(count):
            out = root / f"of{count}" / str(index)
            assert main(["run", *SMALL, "--shard", f"{index}/{count}", "--out", str(out)]) == 0
    return root


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


@pytest.mark.slow
def test_each_shard_records_itself_and_the_whole_specs_fingerprint(runs):
    joint = _meta(runs / "joint")
    held = []
    for index in range(2):
        record = _meta(runs / "of2" / str(index))
        assert record["shard"]["index"] == index and record["shard"]["count"] == 2
        assert record["fingerprint"] == joint["fingerprint"]
        assert record["spec"] == joint["spec"]
        frame = pd.read_csv(runs / "of2" / str(index) / "runs.csv.gz")
        pairs = set(frame[schema.PAIR].itertuples(index=False, name=None))
        assert pairs == {tuple(pair) for pair in record["shard"]["pairs"]}
        held += sorted(pairs)
    assert sorted(held) == sorted(PAIRS)  # each pair in one shard


@pytest.mark.slow
def test_shards_merged_equal_one_run_of_the_whole_spec(runs, capsys):
    out = runs / "merged"
    assert main(["merge", str(runs / "of2" / "1"), str(runs / "of2" / "0"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert compare.run(str(runs / "joint"), str(out), [], []) == 0
    joint, merged = (pd.read_csv(f / "runs.csv.gz") for f in (runs / "joint", out))
    assert len(merged) == len(joint)
    columns = [c for c in joint.columns if c not in ("compile_seconds", "run_seconds")]
    pd.testing.assert_frame_equal(merged[columns], joint[columns])  # the joint run's order
    record = _meta(out)
    assert "shard" not in record and record["missing_pairs"] == []
    walls = [_meta(runs / "of2" / str(i))["total_wall_seconds"] for i in range(2)]
    assert record["shards"]["wall_seconds"] == walls
    assert record["total_wall_seconds"] == max(walls)  # shards run at once: not the sum
    assert "total_wall_seconds" not in record["summed"] and "run_seconds" in record["summed"]
    assert record["pairs"] == len(PAIRS)


@pytest.mark.slow
def test_an_incomplete_set_of_shards_is_refused_naming_what_lacks(runs, tmp_path, capsys):
    two = [str(runs / "of3" / "0"), str(runs / "of3" / "1")]
    assert main(["merge", *two, "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "shards not given: 2/3" in error
    missing = [tuple(p) for p in _meta(runs / "of3" / "2")["shard"]["pairs"]]
    assert all(f"{p} x {o}" in error for p, o in missing)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_shard_given_twice_or_of_another_count_is_refused(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs / "of2" / "0", copy)
    argv = [str(runs / "of2" / "0"), str(copy), str(runs / "of2" / "1")]
    assert main(["merge", *argv, "--out", str(tmp_path / "twice")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "shard 0/2 is given twice" in error
    argv = [str(runs / "of2" / "0"), str(runs / "of3" / "1"), str(runs / "of3" / "2")]
    assert main(["merge", *argv, "--out", str(tmp_path / "counts")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "different counts" in error
    # dealt from another runs table: the pairs of the two do not add up
    record = _meta(copy)
    record["shard"]["assignment"] = "0" * 16
    (copy / "meta.json").write_text(json.dumps(record))
    argv = [str(copy), str(runs / "of2" / "1")]
    assert main(["merge", *argv, "--out", str(tmp_path / "dealt")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "dealt differently" in error
    assert not any((tmp_path / name).exists() for name in ("twice", "counts", "dealt"))


@pytest.mark.slow
def test_allow_partial_merges_and_names_the_missing_pairs(runs, capsys):
    out = runs / "partial"
    two = [str(runs / "of3" / "0"), str(runs / "of3" / "1")]
    assert main(["merge", *two, "--allow-partial", "--out", str(out)]) == 0
    capsys.readouterr()
    missing = [tuple(p) for p in _meta(runs / "of3" / "2")["shard"]["pairs"]]
    record = _meta(out)
    assert [tuple(p) for p in record["missing_pairs"]] == missing
    assert record["shards"]["missing"] == [2] and record["full_suite"] is False
    skipped = pd.read_csv(out / "skipped.csv")
    assert set(skipped[schema.PAIR].itertuples(index=False, name=None)) >= set(missing)
    tables = (out / "TABLES.md").read_text()
    assert all(p in tables and o in tables for p, o in missing)
    assert "its shard of 3 was not merged" in tables


@pytest.mark.slow
def test_the_local_executor_runs_the_shards_as_processes_and_merges_them(tmp_path):
    pytest.importorskip("submitit")
    tiny = ["--problems", "rosenbrock_2d", "quadratic_20d_cond1e3", "--optimizers", "sgd", "adam"]
    argv = ["run", *tiny, "--steps", "20", "--seeds", "1", "--executor", "local"]
    argv += ["--shards", "2", "--out", str(tmp_path / "D")]
    # As a user runs it: `python -m bench` in a process of its own (a test process's
    # captured streams are not the terminal the jobs' submitter writes to).
    env = {**os.environ, "OPTBENCH_CACHE": str(tmp_path / "cache")}

    def bench(*arguments):
        done = subprocess.run(
            [sys.executable, "-m", "bench", *arguments], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr

    err = bench(*argv)
    assert err.count("job ") == 2  # both shards submitted, each a process of its own
    for index in range(2):
        assert _meta(tmp_path / "D" / ".shards" / str(index))["shard"]["index"] == index
    merged = _meta(tmp_path / "D")
    assert merged["shards"]["merged"] == [0, 1] and merged["missing_pairs"] == []
    runs = pd.read_csv(tmp_path / "D" / "runs.csv.gz")
    assert sorted(set(runs[schema.PAIR].itertuples(index=False, name=None))) == sorted(PAIRS)
    # submitted again: shard 0's folder is complete and not run again; shard 1 is re-run
    shutil.rmtree(tmp_path / "D" / ".shards" / "1")
    err = bench(*argv)
    assert "shard 0/2: complete" in err and err.count("job ") == 1
    assert (tmp_path / "D" / ".shards" / "1" / "meta.json").exists()
