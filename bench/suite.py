"""Runs every (problem, optimizer) pair of a suite spec and writes the results folder.

The folder is built complete in a hidden sibling, then swapped in: an interrupted run
leaves the previous results as they were.
"""

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from bench import distributed, meta, report
from bench.io import write_csv, write_text
from bench.progress import Progress
from bench.records import curves_frame, layer_grad_norms_frame, paths_frame, runs_frame
from bench.runner import run_sweep
from bench.spec import SuiteSpec, skip_reason
from bench.tuning import tuned_learning_rates
from optimizers import OPTIMIZERS
from problems import PROBLEMS


class NotAResultsFolder(Exception):
    """`out` holds files but no runs.csv: it is not replaced, to protect what is there."""


def sweep_pair(spec: SuiteSpec, problem: str, optimizer: str, devices=None) -> dict:
    """Sweeps one pair; returns its tidy tables (runs, tuned curves, ...) and timings."""
    common = dict(
        learning_rates=spec.learning_rates(optimizer),
        seeds=spec.seeds,
        steps=spec.budget(problem),
        dtype=spec.dtype,
        devices=devices,
        optimize=spec.optimize,
    )
    result = run_sweep(problem, optimizer, **common)
    runs = runs_frame(result)
    # The problem's facts travel with the rows, so tables and plots need only the CSV.
    at = list(runs.columns).index("seed") + 1
    for offset, (name, value) in enumerate(
        {"f_star": result.f_star, "target": result.target, "steps": common["steps"]}.items()
    ):
        runs.insert(at + offset, name, value)
    compile_seconds, run_seconds = result.compile_seconds, result.run_seconds
    if spec.folds is not None and "dataset" in PROBLEMS[problem].tags:
        folds = run_sweep(problem, optimizer, folds=spec.folds, **common)
        held_out = pd.DataFrame(
            {
                "learning_rate": folds.learning_rates,
                "seed": folds.seeds,
                "cv_loss": folds.metrics["validation_loss"],
            }
        )
        mean = held_out.groupby(["learning_rate", "seed"], as_index=False)["cv_loss"].mean()
        runs = runs.merge(mean, on=["learning_rate", "seed"], how="left", validate="1:1")
        compile_seconds += folds.compile_seconds
        run_seconds += folds.run_seconds
    tuned = tuned_learning_rates(runs)["learning_rate"].iloc[0]
    keep = result.learning_rates == tuned
    tables = {"runs": runs, "curves": curves_frame(result, spec.curve_points, keep)}
    if result.layer_grad_norms is not None:
        tables["layer_grad_norms"] = layer_grad_norms_frame(result, spec.curve_points, keep)
    if result.paths is not None:
        tables["paths"] = paths_frame(result, keep)
    return {"tables": tables, "compile_seconds": compile_seconds, "run_seconds": run_seconds}


# What a run writes into the results folder; anything else there (other tools' reports)
# is carried over into the new folder untouched.
OWNED = {
    "runs.csv",
    "curves.csv",
    "summary.csv",
    "skipped.csv",
    "paths.csv",
    "layer_grad_norms.csv",
    "TABLES.md",
    "meta.json",
    "convergence.png",
    "performance_profile.png",
    "plots",
}


def _swap_in(staging: Path, out: Path) -> None:
    """Replaces `out` by `staging` with two renames; the old folder is deleted last.

    Entries of `out` that a run does not own are copied into `staging` first.
    """
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        for entry in out.iterdir():
            if entry.name not in OWNED and not (staging / entry.name).exists():
                copy = shutil.copytree if entry.is_dir() else shutil.copy2
                copy(entry, staging / entry.name)
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def default_jobs() -> int:
    """Pairs compiled at once: one per CPU core, one in a multi-process job.

    XLA compiles a program on one core without holding Python's GIL, and compiling
    is most of a suite's time, so two pairs in flight on two cores take about half
    the wall time. Processes of a multi-host job must launch programs in one order.
    """
    import jax

    return 1 if jax.process_count() > 1 else max(1, min(os.cpu_count() or 1, 4))


def run_suite(
    spec: SuiteSpec, out: Path, devices: int | None = None, progress=None, jobs: int | None = None
) -> dict:
    """Sweeps every pair of `spec`, then writes the whole results folder `out` atomically.

    Returns the tidy tables by name. `progress`: a stream for the progress bar
    (default stderr); `jobs`: pairs in flight at once (default `default_jobs()`).
    The tables do not depend on `jobs`: pairs are collected in the spec's order.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "runs.csv").exists():
        raise NotAResultsFolder(f"{out} is not empty and holds no runs.csv; not replacing it")
    start = time.perf_counter()
    pairs, skipped = [], []
    for problem, optimizer in spec.pairs():
        reason = skip_reason(PROBLEMS[problem], OPTIMIZERS[optimizer])
        if reason is None:
            pairs.append((problem, optimizer))
        else:
            skipped.append({"problem": problem, "optimizer": optimizer, "reason": reason})

    bar = Progress(len(pairs), progress)
    parts: dict[str, list[pd.DataFrame]] = {}
    compile_seconds = run_seconds = 0.0
    pool = ThreadPoolExecutor(jobs or default_jobs())
    try:
        futures = [pool.submit(sweep_pair, spec, p, o, devices) for p, o in pairs]
        for (problem, optimizer), future in zip(pairs, futures, strict=True):
            done = future.result()
            for name, frame in done["tables"].items():
                parts.setdefault(name, []).append(frame)
            compile_seconds += done["compile_seconds"]
            run_seconds += done["run_seconds"]
            bar.advance(f"{problem} x {optimizer}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    tables["skipped"] = pd.DataFrame(skipped, columns=["problem", "optimizer", "reason"])
    if not distributed.is_writer():  # every process holds all lanes; process 0 writes them
        return tables

    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, frame in tables.items():
            write_csv(frame, staging / f"{name}.csv")
        report.render(staging)
        timings = {
            "jobs": jobs or default_jobs(),
            "pairs": len(pairs),
            "lanes": int(len(tables["runs"])) if "runs" in tables else 0,
            "compile_seconds": round(compile_seconds, 3),
            "run_seconds": round(run_seconds, 3),
            "total_wall_seconds": round(time.perf_counter() - start, 3),
        }
        record = meta.collect(spec, timings, skipped, devices)
        write_text(meta.dumps(record), staging / "meta.json")
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tables


__all__ = ["NotAResultsFolder", "run_suite", "sweep_pair"]
