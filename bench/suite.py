"""Runs every (problem, optimizer) pair of a suite and writes the results folder."""

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench import plots
from bench.io import write_csv
from bench.records import curves_frame, runs_frame
from bench.runner import resolve_problem, run_sweep
from bench.tuning import tuned_learning_rates


def run_suite(
    problems: Sequence[str],
    optimizers: Sequence[str],
    seeds: int,
    steps: int | None,
    dtype: str,
    out: Path,
) -> pd.DataFrame:
    """Sweeps each pair, then writes runs.csv, curves.csv and convergence.png under `out`."""
    runs, curves = [], []
    pairs = [(p, o) for p in problems for o in optimizers]
    for i, (problem, optimizer) in enumerate(pairs, 1):
        result = run_sweep(problem, optimizer, seeds=seeds, steps=steps, dtype=dtype)
        print(
            f"[{i}/{len(pairs)}] {problem} x {optimizer}: {result.lanes} lanes, "
            f"compile {result.compile_seconds:.2f}s, run {result.run_seconds:.2f}s",
            file=sys.stderr,
        )
        runs.append(runs_frame(result))
        curves.append(curves_frame(result))
    runs, curves = pd.concat(runs, ignore_index=True), pd.concat(curves, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(runs, out / "runs.csv")
    write_csv(curves, out / "curves.csv")
    f_stars = {p: resolve_problem(p).f_star for p in problems}
    plots.convergence(curves, tuned_learning_rates(runs), f_stars, out / "convergence.png")
    return runs
