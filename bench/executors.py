"""`bench run --executor submitit|local --shards N`: the N shards of a run as jobs.

Each shard (`bench run --shard i/N`, `bench.shards`) is one job of a job array that
submitit submits (to SLURM with `submitit`, as local processes with `local`); shard i
writes `OUT/.shards/i/`, and when every job is done the shards are merged into OUT
(`bench.combine.merge_shards`). A shard whose folder is complete (its meta.json records
the same shard of the same spec) is not submitted again. Every job is a fresh Python
process (SLURM's, or one that submitit's local executor starts with `subprocess`): JAX
is never forked.
"""

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.shards import SHARDS

KINDS = ("submitit", "local")
INSTALL = "pip install -e '.[cluster]'"


class ExecutorError(Exception):
    """A job that could not be submitted or failed; the message is one line."""


# sbatch options that the executor sets itself: not among a Cluster's `additional` ones.
RESERVED = (
    "partition time array job-name nodes ntasks-per-node output error open-mode signal"
).split()


def _positive(name: str, value) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Cluster:
    """What a SLURM job array asks for: the partition (None: the cluster's default), the
    time limit of each job in minutes, how many of its jobs run at once (None: all), and
    further sbatch options (`account`, `qos`, `gres`, ...: submitit's
    `slurm_additional_parameters`), each a string, an integer or True (a bare flag).
    ValueError naming the field for a value of another type, or not positive."""

    partition: str | None = None
    minutes: int = 240
    parallelism: int | None = None
    additional: Mapping[str, str | int | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partition is not None and not isinstance(self.partition, str):
            raise ValueError(f"partition must be a string, got {self.partition!r}")
        _positive("minutes", self.minutes)
        if self.parallelism is not None:
            _positive("parallelism", self.parallelism)
        if not isinstance(self.additional, Mapping):
            raise ValueError(f"additional must be a table of sbatch options: {self.additional!r}")
        for key, value in self.additional.items():
            if not (isinstance(key, str) and (type(value) in (str, int) or value is True)):
                raise ValueError(
                    f"additional.{key} must be a string, an integer or true, got {value!r}"
                )
            if key.replace("_", "-") in RESERVED:
                raise ValueError(
                    f"additional.{key} is set by the executor (partition, time and the "
                    "array's parallelism have keys of their own)"
                )


def load_cluster(path) -> Cluster:
    """The Cluster of the `[slurm]` table of the TOML file `path`: `partition` (a string),
    `time` (minutes) and `parallelism` (positive integers), `additional` (a table of
    further sbatch options); a key left out keeps the Cluster's default. ValueError naming
    the file, and the key at fault, for a file that cannot be read or holds anything else."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:  # TOMLDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not a TOML file: {error}") from None
    table = document.get("slurm")
    if set(document) != {"slurm"} or not isinstance(table, dict):
        raise ValueError(f"{path}: must hold one [slurm] table and nothing else")
    known = ("partition", "time", "parallelism", "additional")
    unknown = [key for key in table if key not in known]
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]} in [slurm]; known: {', '.join(known)}")
    minutes = table.get("time", Cluster.minutes)
    try:
        _positive("time", minutes)
        return Cluster(
            table.get("partition"), minutes, table.get("parallelism"), table.get("additional", {})
        )
    except ValueError as error:
        raise ValueError(f"{path}: [slurm] {error}") from None


def shard_folder(out: Path, index: int) -> Path:
    return Path(out) / SHARDS / str(index)


def complete(folder: Path, index: int, count: int, spec) -> bool:
    """Whether `folder` holds shard `index` of `count` of `spec`, complete: run_suite
    writes meta.json last, and swaps the folder in whole."""
    try:
        record = json.loads((folder / "meta.json").read_text())
        shard = record["shard"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    fields = json.loads(json.dumps(asdict(spec)))
    return (shard.get("index"), shard.get("count")) == (index, count) and record.get(
        "spec"
    ) == fields


def run_shard(prepare: Callable, run: Callable, args) -> int:
    """The job: `prepare()` (what `python -m bench` does first: the compilation cache),
    then `run` (`bench run`'s handler) on the namespace of one shard; an error unless it
    succeeds."""
    prepare()
    status = run(args)
    if status:
        raise RuntimeError(f"bench run --shard {args.shard} exited with status {status}")
    return status


def _executor(kind: str, logs: Path, cluster: Cluster):
    try:
        import submitit  # pyright: ignore[reportMissingImports]  # the optional `cluster` extra
    except ImportError:
        raise ExecutorError(f"--executor {kind} needs submitit: {INSTALL}") from None
    if kind == "local":
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=cluster.minutes)
        return executor
    executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
    settings: dict = {"timeout_min": cluster.minutes, "nodes": 1, "tasks_per_node": 1}
    if cluster.partition is not None:
        settings["slurm_partition"] = cluster.partition
    if cluster.parallelism is not None:
        settings["slurm_array_parallelism"] = cluster.parallelism
    if cluster.additional:
        settings["slurm_additional_parameters"] = dict(cluster.additional)
    executor.update_parameters(name="optbench", **settings)
    return executor


def submit(
    prepare: Callable,
    run: Callable,
    args,
    spec,
    count: int,
    kind: str,
    out: Path,
    cluster: Cluster,
    log,
) -> list[Path]:
    """Runs the shards of `spec` that `out` does not hold complete as one job array of
    `kind`, each `run_shard(prepare, run, ...)` on a copy of `args` with its --shard and
    --out; waits for them and returns every shard's folder. ExecutorError naming the
    first shard that failed and its log."""
    folders = [shard_folder(out, i) for i in range(count)]
    pending = [i for i in range(count) if not complete(folders[i], i, count, spec)]
    for i in sorted(set(range(count)) - set(pending)):
        print(f"shard {i}/{count}: complete in {folders[i]}, not run again", file=log)
    if not pending:
        return folders
    executor = _executor(kind, Path(out) / SHARDS / "logs", cluster)
    jobs_args = []
    for i in pending:
        job = type(args)(**vars(args))
        job.executor, job.shards, job.shard, job.out = None, None, f"{i}/{count}", str(folders[i])
        vars(job).update({name: None for name in vars(job) if name.startswith("slurm_")})
        jobs_args.append(job)
    n = len(pending)
    jobs = executor.map_array(run_shard, [prepare] * n, [run] * n, jobs_args)
    for i, job in zip(pending, jobs, strict=True):
        print(f"shard {i}/{count}: job {job.job_id}, log {job.paths.stderr}", file=log)
    failed = []
    for i, job in zip(pending, jobs, strict=True):
        try:
            job.result()
        except Exception as error:
            lines = str(error).strip().splitlines()
            why = lines[-1] if lines else type(error).__name__
            failed.append(f"shard {i}/{count} failed ({why}; log: {job.paths.stderr})")
    if failed:
        more = f"; {len(failed) - 1} more failed" if len(failed) > 1 else ""
        raise ExecutorError(failed[0] + more)
    return folders


__all__ = ["KINDS", "Cluster", "ExecutorError", "complete", "load_cluster", "run_shard", "submit"]
