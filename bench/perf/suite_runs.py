"""Whole `bench run`s on a subset of the suite, each a fresh process, side by side in one
perf run: a cold run (empty caches) against a warm one (the same run again: every sweep
from the sweep cache, the drawing kept), and one process against two shards run at once
and merged (both with the caches off and empty compilation caches). Each run's wall time,
and the compile share of the cold run as its meta.json records it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The subset: one problem of each kind (closed form, a data set, a minibatch one) and rules
# of each kind (plain, adaptive, a line search).
SUBSET = [
    "--problems",
    "rosenbrock_2d",
    "quadratic_20d_cond1e3",
    "logistic_breast_cancer",
    "least_squares_diabetes_batch32",
    "--optimizers",
    "sgd",
    "nesterov",
    "adam",
    "rmsprop",
    "lion",
    "lbfgs",
]
QUICK = ["--problems", "rosenbrock_2d", "--optimizers", "sgd", "adam", "--seeds", "1"]
QUICK += ["--steps", "20"]


def _command(arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "bench", "run", *arguments]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OPTBENCH_CACHE": str(cache)}


def _timed(commands: list[list[str]], env: dict[str, str]) -> float:
    """Wall seconds of `commands` started together, until the last has finished."""
    start = time.perf_counter()
    running = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for process, command in zip(running, commands, strict=True):
        _, error = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {error.strip()[-500:]}")
    return time.perf_counter() - start


def suite_rows(quick: bool = False, log=print) -> list[dict]:
    """Rows of section "suite": case "cache" (impl cold, warm) and case "shards" (impl
    one_process, two_shards), each with its wall `seconds`; the cache rows carry their
    compile and run seconds, their pairs, and what the sweep cache served: `units`
    (whole pairs), `hits` (single sweeps) and `stored`."""
    subset = QUICK if quick else SUBSET
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = _env(tmp / "cache")
        out = ["--out", str(tmp / "cached")]
        for impl in ("cold", "warm"):
            seconds = _timed([_command([*subset, *out])], env)
            meta = json.loads((tmp / "cached" / "meta.json").read_text())
            rows.append(
                dict(
                    section="suite",
                    case="cache",
                    impl=impl,
                    seconds=seconds,
                    compile_seconds=meta["compile_seconds"],
                    run_seconds=meta["run_seconds"],
                    pairs=meta["pairs"],
                    units=meta["sweep_cache"]["units"],
                    hits=meta["sweep_cache"]["hits"],
                    stored=meta["sweep_cache"]["stored"],
                )
            )
            log(f"suite: {impl} run {seconds:.1f} s")
        one = ["--no-cache", "--jobs", "2", "--out", str(tmp / "one")]
        seconds = _timed([_command([*subset, *one])], _env(tmp / "one_cache"))
        rows.append(dict(section="suite", case="shards", impl="one_process", seconds=seconds))
        shards = [
            _command(
                [*subset, "--no-cache", "--jobs", "1", "--shard", f"{i}/2"]
                + ["--balance-from", str(tmp / "one"), "--out", str(tmp / f"shard{i}")]
            )
            for i in range(2)
        ]
        merge = [sys.executable, "-m", "bench", "merge", str(tmp / "shard0"), str(tmp / "shard1")]
        merge += ["--out", str(tmp / "merged")]
        env = _env(tmp / "shard_cache")
        seconds = _timed(shards, env) + _timed([merge], env)
        rows.append(dict(section="suite", case="shards", impl="two_shards", seconds=seconds))
        log(f"suite: one process {rows[-2]['seconds']:.1f} s, two shards {seconds:.1f} s")
    return rows
