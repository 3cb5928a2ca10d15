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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.shards import SHARDS

KINDS = ("submitit", "local")
INSTALL = "pip install -e '.[cluster]'"


class ExecutorError(Exception):
    """A job that could not be submitted or failed; the message is one line."""


@dataclass(frozen=True)
class Cluster:
    """What a SLURM job array asks for: the partition (None: the cluster's default), the
    time limit of each job in minutes, and how many of its jobs run at once (None: all)."""

    partition: str | None = None
    minutes: int = 240
    parallelism: int | None = None


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


__all__ = ["KINDS", "Cluster", "ExecutorError", "complete", "run_shard", "submit"]
