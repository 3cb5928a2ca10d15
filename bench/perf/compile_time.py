"""Compile time: per (problem, optimizer) program of `make bench`, and what the cache saves.

`python -m bench.perf.compile_time QUICK CACHE_DIR PROBLEM:OPTIMIZER ...` compiles and runs the
given pairs with JAX's persistent compilation cache in CACHE_DIR and prints one JSON
line per pair; `cache_effect` calls it twice in fresh processes, cold then warm.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench import spec as suite_spec
from bench.results import schema
from bench.sweep.arguments import skip_reason
from bench.sweep.runner import run_sweep
from optimizers import OPTIMIZERS
from problems import PROBLEMS


def bench_pair(spec, problem: str, optimizer: str) -> dict:
    """Compile and run seconds of the exact program `make bench` builds for this pair."""
    result = run_sweep(
        problem,
        optimizer,
        learning_rates=spec.learning_rates(optimizer),
        seeds=spec.seeds,
        steps=spec.budget(problem),
        dtype=spec.dtype,
    )
    return {
        "compile_seconds": result.compile_seconds,
        "seconds": result.run_seconds,
        "lanes": result.lanes,
    }


def sample_pairs(problem: str = "logistic_synthetic_200x10", optimizer: str = "adam"):
    """Every optimizer on one problem, and one optimizer on every problem."""
    pairs = [(problem, o) for o in OPTIMIZERS]
    pairs += [(p, optimizer) for p in PROBLEMS if p != problem]
    spec = suite_spec.load()
    return [
        (p, o)
        for p, o in pairs
        if skip_reason(PROBLEMS[p], OPTIMIZERS[o]) is None
        and p in spec.problems
        and o in spec.optimizers
    ]


def compile_rows(pairs, budget_seconds: float, quick: bool = False, log=print) -> list[dict]:
    """Measures pairs in order until `budget_seconds` of wall time are spent (at least one).

    `quick` uses the `--quick` suite (fewer seeds and steps) instead of `make bench`'s.
    """
    spec = suite_spec.load(quick=quick)
    rows, start = [], time.perf_counter()
    for problem, optimizer in pairs:
        if rows and time.perf_counter() - start > budget_seconds:
            log(f"compile: budget spent after {len(rows)} of {len(pairs)} pairs")
            break
        result = bench_pair(spec, problem, optimizer)
        rows.append(
            dict(section="compile", case=f"{problem}:{optimizer}", impl="ours", layout="")
            | dict(size=PROBLEMS[problem].dim)
            | result
        )
    return rows


def recorded_bench_share(folder: Path) -> dict | None:
    """Compile share of the last full `make bench`, from the runs table of its results
    `folder` (one timing per sweep, repeated on its lanes)."""
    runs_table = schema.path(folder, "runs")
    if not runs_table.exists():
        return None
    runs = pd.read_csv(runs_table)
    if not {"compile_seconds", "run_seconds"} <= set(runs.columns):
        return None
    # One timing per sweep: a pair's tuning sweep and, where there is one, its evaluation.
    sweeps = runs.drop_duplicates([c for c in ("problem", "optimizer", "role") if c in runs])
    compile_total, run_total = sweeps["compile_seconds"].sum(), sweeps["run_seconds"].sum()
    return {
        "pairs": len(sweeps.drop_duplicates(["problem", "optimizer"])),
        "compile_seconds": float(compile_total),
        "run_seconds": float(run_total),
        "share": float(compile_total / (compile_total + run_total)),
    }


def _probe(cache_dir: str, pairs: list[str], quick: bool) -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    spec = suite_spec.load(quick=quick)
    for pair in pairs:
        problem, optimizer = pair.split(":")
        print(json.dumps({"case": pair, **bench_pair(spec, problem, optimizer)}), flush=True)


def cache_effect(pairs, quick: bool = False, log=print) -> list[dict]:
    """Compile seconds of `pairs` in a fresh process with an empty cache, then a warm one."""
    names = [f"{p}:{o}" for p, o in pairs]
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for impl in ("cache_cold", "cache_warm"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.perf.compile_time", str(quick), cache_dir, *names],
                capture_output=True,
                text=True,
                check=True,
            )
            for line in done.stdout.splitlines():
                record = json.loads(line)
                rows.append(dict(section="cache", impl=impl, layout="") | record)
            log(f"cache: {impl} done")
    return rows


if __name__ == "__main__":
    _probe(sys.argv[2], sys.argv[3:], quick=sys.argv[1] == "True")
