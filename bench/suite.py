"""Runs every (problem, optimizer) pair of a suite spec and writes the results folder.

The folder is locked for the whole run and built complete in a hidden sibling of a
name of its own, then swapped in: an interrupted run leaves the previous results as
they were, and a second run into the same folder is refused while the first one runs.
"""

import contextlib
import glob
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from bench import plugins, pool, protocols
from bench.analysis.analyze import complete_facts
from bench.analysis.tuning import grid_edge, grid_medians, recorded_cost, tuned_trials
from bench.known import facts_frame, known
from bench.progress import Progress
from bench.protocols import extended_trials
from bench.report import render
from bench.results import meta, schema
from bench.results.files import (
    OutputError,
    as_written,
    home_of,
    is_mount_point,
    locked,
    swap_in,
    write_csv,
    write_text,
)
from bench.shards import SHARDS, Shard, recorded_seconds, unit_costs
from bench.spec import SuiteSpec, load
from bench.sweep import cache as cache_keys
from bench.sweep import distributed, optimum
from bench.sweep.arguments import skip_reason
from bench.sweep.cache import SweepCache
from bench.sweep.records import curves_frame, layer_grad_norms_frame, paths_frame, runs_frame
from bench.sweep.runner import run_sweep
from bench.sweep.targets import level_targets, resolution_reason, start_value
from problems import sources


class NotAResultsFolder(OutputError):
    """`out` holds files but no runs.csv.gz: it is not replaced, to protect what is there."""


class RenderFailed(Exception):
    """The raw tables were written, but the summary or tables could not be drawn."""


class SpecError(ValueError):
    """A spec that cannot run as asked (cross-validation without enough examples)."""


def check(spec: SuiteSpec) -> None:
    """Raises SpecError for k-fold tuning without a data-set problem or with too few
    examples, and for an optimizer whose trials the protocol cannot make (no default
    learning rate under `defaults`)."""
    if protocols.parse(spec.protocol).name == "defaults":
        for optimizer in spec.optimizers:
            try:
                plugins.optimizer(optimizer).defaults()
            except ValueError:
                raise SpecError(
                    f"--protocol defaults: {optimizer} has no default learning rate; declare "
                    "default_learning_rate = ... in its --space file (or give its factory one)"
                ) from None
    if spec.folds is None:
        return
    examples = {
        name: len(jax.tree.leaves(spec.problem(name).data())[0])
        for name in spec.problems
        if "dataset" in spec.problem(name).tags
    }
    if not examples:
        raise SpecError(
            f"--cv needs a data-set problem; none of {', '.join(spec.problems)} has a data set"
        )
    small = [f"{name} ({n})" for name, n in examples.items() if n < spec.folds]
    if small:
        raise SpecError(f"--cv {spec.folds} folds exceed the examples of {', '.join(small)}")


def is_full(fields: dict) -> bool:
    """True when `fields` (a spec as `asdict` gives it) is the whole default suite.

    `optimize` changes the compile options, not the results, and is not compared.
    """
    default = asdict(load())
    return all(fields[k] == v for k, v in default.items() if k != "optimize")


def _rows(result, role: str, steps: int, protocol) -> pd.DataFrame:
    """The runs rows of a sweep's lanes in the declared column order; the problem's facts
    travel with the rows, so tables and plots need only the CSV."""
    runs = runs_frame(result).assign(
        role=role, f_star=result.f_star, target=result.target, steps=steps
    )
    studies = protocol.study_of(result.trials)
    if studies is not None:
        runs[schema.STUDY] = studies
    return schema.ordered(runs, result.metrics)


def _tuned_trial(runs: pd.DataFrame, cost: str) -> tuple[int, str]:
    """The id of the trial the tuning rule picks among a pair's tune rows, and the edge of
    the grid it sits at ("low", "high" or "": `tuning.grid_edge`).

    Tuned on the numbers as runs.csv.gz keeps them, so that `bench plot`, which tunes from
    the file, picks the same trial (settings tied to 8 digits otherwise split).
    """
    written, axis = as_written(runs), recorded_cost(runs, cost)
    pick = tuned_trials(written, axis).iloc[0]
    return int(pick[schema.TRIAL]), grid_edge(grid_medians(written, axis), pick)


def _pair_tables(runs: pd.DataFrame, result, evaluated, first, figures: bool) -> dict:
    """A pair's tables: its runs, the curves of its evaluation lanes (those of `result`
    that `evaluated` marks; None: all), and, where the problem's figures are drawn
    (`figures`), what they draw of the lane `first` marks: the iterates and per-layer
    gradient norms."""
    tables = {"runs": runs, "curves": curves_frame(result, evaluated)}
    if not figures:
        return tables
    if result.layer_grad_norms is not None:
        tables["layer_grad_norms"] = layer_grad_norms_frame(result, first)
    if result.paths is not None:
        tables["paths"] = paths_frame(result, first)
    return tables


def sweep_pair(
    spec: SuiteSpec, problem: str, optimizer: str, devices=None, cache: SweepCache | None = None
) -> dict:
    """Sweeps one pair on the tuning seeds, extends its grid where the pick sits at an edge
    (`protocols.extended_trials`; not where it is tuned by cross-validation), re-runs its
    tuned trial (every swept hyperparameter at its tuned value, the trial id kept) on the
    evaluation seeds; returns its tidy tables (runs of both roles, the eval lanes'
    curves, ...) and timings.

    Every sweep runs its lanes in chunks of `spec.eval_seeds` through one program, so the
    extension and the evaluation call the tuning sweep's compiled program again. The
    pair's time per step is the tuning sweep's (timed over all its calls), on the rows of
    all. `cache`: the sweep cache its sweeps are looked up in and stored in.
    """
    protocol = protocols.parse(spec.protocol)
    trials = spec.trials(optimizer)
    common: dict[str, Any] = dict(
        steps=spec.budget(problem),
        dtype=spec.dtype,
        devices=devices,
        optimize=spec.optimize,
        record_points=spec.curve_points,
        cache=cache,
    )
    eval_seeds = spec.evaluation_seeds()

    def sweep(settings, seeds, role, seconds_per_step=None, trial=None, first=0):
        result = run_sweep(
            spec.problem(problem),
            optimizer,
            seeds=seeds,
            chunk=spec.eval_seeds,
            trials=settings,
            levels=schema.LEVELS,
            **common,
        )
        if seconds_per_step is not None:
            result = replace(result, seconds_per_step=seconds_per_step)
        if trial is not None:  # the eval lanes keep the id of the trial they re-run
            result = replace(result, trials=np.full(result.lanes, trial))
        if first:  # an extension's trials are numbered after the grid's
            result = replace(result, trials=result.trials + first)
        return result, _rows(result, role, common["steps"], protocol)

    result, runs = sweep(trials, spec.seeds, "tune")
    compile_seconds, run_seconds = _spent(result)
    cross_validated = spec.folds is not None and "dataset" in spec.problem(problem).tags
    if cross_validated:
        folds = run_sweep(
            spec.problem(problem),
            optimizer,
            seeds=spec.seeds,
            folds=spec.folds,
            trials=trials,
            **common,
        )
        # The folds sweep runs the same trials in the same order: its trials are the tune
        # sweep's, matched on the id and every hyperparameter value.
        held_out = pd.DataFrame(
            {
                schema.TRIAL: folds.trials,
                **folds.hparams,
                "seed": folds.seeds,
                "cv_loss": folds.metrics["validation_loss"],
            }
        )
        key = [schema.TRIAL, *folds.hparams, "seed"]
        mean = held_out.groupby(key, as_index=False)["cv_loss"].mean()
        runs = schema.ordered(runs.merge(mean, on=key, how="left", validate="1:1"), result.metrics)
        compile_seconds, run_seconds = _added((compile_seconds, run_seconds), folds)
    trial, edge = _tuned_trial(runs, spec.cost)
    extends = protocol.extends and not cross_validated
    extension = extended_trials(trials, trial, edge) if extends else []
    if extension:  # the pick sits at the grid's edge: sweep beyond it, pick again
        more, more_runs = sweep(
            extension, spec.seeds, "tune", result.seconds_per_step, first=len(trials)
        )
        compile_seconds, run_seconds = _added((compile_seconds, run_seconds), more)
        trials = [*trials, *extension]
        runs = pd.concat([runs, more_runs], ignore_index=True)
        trial, _ = _tuned_trial(runs, spec.cost)
    # The setting re-run is the trial's own, unrounded.
    evaluation, eval_runs = sweep(
        [trials[trial]], eval_seeds, "eval", result.seconds_per_step, trial=trial
    )
    compile_seconds, run_seconds = _added((compile_seconds, run_seconds), evaluation)
    # What the figures draw of these: one seed's iterates and per-layer gradient norms.
    tables = _pair_tables(
        pd.concat([runs, eval_runs], ignore_index=True),
        evaluation,
        None,
        evaluation.seeds == eval_seeds[0],
        spec.problem_figures,
    )
    known_problem = spec.problem(problem)
    facts = []
    if known_problem.f_star is not None:  # f(x0) and f*, whence the levels' targets
        start = start_value(known_problem)
        facts = [{"problem": problem, "f0": start, "f_star": known_problem.f_star}]
    return {
        "tables": tables,
        "problems": facts,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
    }


def _spent(result) -> tuple[float, float]:
    """The compile and run seconds a sweep took in this run: none where the sweep cache
    held its outputs (the rows keep the seconds of the run that made them)."""
    return (0.0, 0.0) if result.cached else (result.compile_seconds, result.run_seconds)


def _added(seconds: tuple[float, float], result) -> tuple[float, float]:
    compile_seconds, run_seconds = _spent(result)
    return seconds[0] + compile_seconds, seconds[1] + run_seconds


def resolved_by_run(problem) -> bool:
    """True for a problem whose pairs `sweep_problem` runs together: a deterministic one
    whose f* the run checks or finds (CUTEst's, `Problem.f_star_from_run`, and any from a
    fixed start)."""
    return (problem.fixed_start or problem.f_star_from_run) and not problem.stochastic


# The rule of the one-step sweep that reads every lane's start (`sweep_problem`; its
# learning rate does not matter: the start is recorded before the first update).
START_PROBE = "sgd"


def sweep_problem(
    spec: SuiteSpec,
    problem: str,
    optimizers: list[str],
    devices=None,
    cache: SweepCache | None = None,
) -> dict:
    """The pairs of one deterministic problem whose f* the run resolves (`resolved_by_run`);
    returns their tables, the problem's row of problems.csv and timings.

    Every optimizer's sweep runs first, measuring nothing against f*: each trial on the
    tuning seeds and, in the same program, on the evaluation seeds (re-running the tuned
    trial alone later would compile every optimizer's program a second time). Then the
    known f* is checked against the lowest value any lane reached, or that value is taken
    where none is known (`bench.sweep.optimum`); with the target tau (f(x0) - f_L), f(x0)
    the problem's start value (`targets.start_value`), every lane is scored at its record
    points, each pair is tuned on its tuning lanes and reported on its tuned trial's
    evaluation lanes. From a fixed start every seed runs the same lane: the tuning seeds
    run alone, and the tuned trial's lanes are its evaluation lanes (a re-run on other
    seeds would reproduce them bit for bit). A problem whose start is not finite in the
    run's dtype on some seed is left out, with the reason.
    """
    known = spec.problem(problem)
    blind = replace(known, f_star=None, f_star_source="best_found", target=math.nan)
    protocol = protocols.parse(spec.protocol)
    steps = spec.budget(problem)
    tuning = list(range(spec.seeds))
    held_out = [] if known.fixed_start else spec.evaluation_seeds()
    # Every lane's start in the run's dtype (a lane's loss at step 0 is the same for every
    # rule), from one step of one lane per seed: a problem whose start is not finite on
    # some seed is left out before any rule runs on it.
    probe = run_sweep(
        blind, START_PROBE, [1e-3], seeds=tuning + held_out, steps=1, dtype=spec.dtype,
        devices=devices, cache=cache,
    )  # fmt: skip
    starts = probe.losses[:, 0]
    if not np.isfinite(starts).all():  # finite in float64 (problems.cutest's list), not here
        seed = int(probe.seeds[~np.isfinite(starts)][0])
        where = "" if known.fixed_start else f" at the start of seed {seed}"
        reason = f"f(x0) is not finite in {spec.dtype}{where}"
        compile_seconds, run_seconds = _spent(probe)
        return {
            "tables": {},
            "problems": [_excluded_row(problem, known.dim, reason)],
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
        }
    results = {
        optimizer: run_sweep(
            blind,
            optimizer,
            seeds=tuning + held_out,
            trials=spec.trials(optimizer),
            steps=steps,
            dtype=spec.dtype,
            devices=devices,
            optimize=spec.optimize,
            record_points=spec.curve_points,
            cache=cache,
        )
        for optimizer in optimizers
    }
    spent = [_spent(r) for r in (probe, *results.values())]
    timings = {
        "compile_seconds": sum(c for c, _ in spent),
        "run_seconds": sum(r for _, r in spent),
    }
    f0 = float(starts[0]) if known.fixed_start else start_value(known)
    lowest = optimum.lowest_value(results.values())
    f_star, source, finding = optimum.resolve(known.f_star, lowest, f0, spec.tau, spec.dtype)
    target = spec.tau * (f0 - f_star)
    levels = level_targets(f_star, f0, schema.LEVELS, spec.dtype)
    parts: dict[str, list[pd.DataFrame]] = {}
    for result in results.values():
        scored = replace(result, f_star=f_star, target=target, levels=levels, reached=None)
        lanes = _rows(scored, "tune", steps, protocol)
        on_held_out = np.isin(scored.seeds, held_out)
        runs = lanes[~on_held_out]
        tuned = scored.trials == _tuned_trial(runs, spec.cost)[0]
        evaluated = tuned & on_held_out if held_out else tuned
        runs = pd.concat([runs, lanes[evaluated].assign(role="eval")], ignore_index=True)
        first = evaluated & (np.cumsum(evaluated) == 1)
        tables = _pair_tables(runs, scored, evaluated, first, spec.problem_figures)
        for name, frame in tables.items():
            parts.setdefault(name, []).append(frame)
    facts = {
        "problem": problem,
        "dim": known.dim,
        "f0": f0,
        "f_star": f_star,
        "f_star_source": source,
        "known_f_star": known.f_star,
        "lowest": lowest,
        "note": known.f_star_note,
        "check": finding,
        "skipped": "",
    }
    return {
        "tables": {name: schema.concat(frames) for name, frames in parts.items()},
        "problems": [facts],
        **timings,
    }


def _holds_full_suite(out: Path) -> bool:
    """True when `out/meta.json` says the folder holds the whole default suite."""
    try:
        return json.loads((out / "meta.json").read_text()).get("full_suite") is True
    except (OSError, ValueError, AttributeError):  # no or a damaged meta.json
        return False


def _check_replaceable(out: Path, spec: SuiteSpec, force: bool, partial: bool = False) -> None:
    """Raises OutputError when a run of `spec` must not replace the folder `out`
    (`partial`: a run of part of the spec's pairs, a shard or a partial merge)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder")
    # A mount point holds its own lock, staging and old folders (`home_of`): not content.
    own = f".{out.name}."
    # So does the folder of an executor's shards (`bench.executors`).
    content = [e for e in out.iterdir() if not e.name.startswith(own) and e.name != SHARDS]
    if content and not schema.path(out, "runs").exists():
        raise NotAResultsFolder(f"{out} is not empty and holds no runs.csv.gz; not replacing it")
    if not force and (partial or not is_full(asdict(spec))) and _holds_full_suite(out):
        raise OutputError(
            f"{out} holds the full suite's results and this run is a smaller one; "
            "choose another --out, or pass --force to replace them"
        )


@contextlib.contextmanager
def _staging_for(out: Path, spec: SuiteSpec, force: bool, partial: bool = False) -> Iterator[Path]:
    """Locks `out`, checks that a run may replace it, and yields a new staging folder.

    Called before anything is compiled, so that an unwritable, locked or protected
    `out` is reported at once. Staging folders that a killed run left beside `out`
    are removed (no other run can be using them while the lock is held).
    """
    with contextlib.ExitStack() as stack:
        existing = next(folder for folder in out.parents if folder.exists())
        if not existing.is_dir():
            raise OutputError(f"cannot write to {out}: {existing} is a file")
        if is_mount_point(out) and not os.access(out, os.W_OK):
            raise OutputError(f"cannot write to {out}: a mount point this process cannot write")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(locked(out))
            _check_replaceable(out, spec, force, partial)
            home = home_of(out)
            for kind in ("partial", "old"):
                for stale in home.glob(f".{glob.escape(out.name)}.{kind}.????????"):
                    shutil.rmtree(stale, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(dir=home, prefix=f".{out.name}.partial."))
        except OSError as error:
            raise OutputError(f"cannot write to {out}: {error.strerror or error}") from None
        os.chmod(staging, 0o755)  # mkdtemp makes folders only their owner can read
        stack.callback(shutil.rmtree, staging, ignore_errors=True)
        yield staging


def default_jobs() -> int:
    """Pairs compiled at once: one per CPU core, one in a multi-process job.

    XLA compiles a program on one core without holding Python's GIL, and compiling
    is most of a suite's time, so two pairs in flight on two cores take about half
    the wall time. Processes of a multi-host job must launch programs in one order.
    """
    import jax

    return 1 if jax.process_count() > 1 else max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class Base:
    """Results a run joins its new rows to (`bench run --against`): another folder's
    tables, the spec of the joined folder and what meta.json says of the join."""

    tables: dict[str, pd.DataFrame]
    spec: SuiteSpec
    notes: dict


def combined(sources: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Several runs' tables as one set: each lane table by `schema.concat` (a
    hyperparameter some runs do not sweep is empty on their rows), skipped pairs as rows."""
    tables = {}
    for name in dict.fromkeys(name for source in sources for name in source):
        frames = [source[name] for source in sources if source.get(name) is not None]
        if name == "problems":  # one row per problem, the first source's first
            tables[name] = complete_facts(*frames)
        elif name == "skipped":
            tables[name] = pd.concat(frames, ignore_index=True)
        else:
            tables[name] = schema.concat(frames)
    return tables


# What a drawing depends on besides the raw tables: the code that reads and draws them and
# the registries whose facts it adds (`known`).
DRAWING_SOURCES = ("bench", "problems", "optimizers")


def _drawing_key(spec: SuiteSpec) -> str:
    """The digest of everything a drawing of given raw tables depends on: the project's
    sources, the versions of the libraries that draw, and the spec's drawing options."""
    from importlib.metadata import version

    libraries = [version(name) for name in ("matplotlib", "pandas", "numpy")]
    options = (spec.cost, spec.problem_figures, spec.taus, spec.scale)
    return cache_keys.digest(cache_keys.source_digest(DRAWING_SOURCES), libraries, options)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reuse_drawing(previous: Path, staging: Path, key: str) -> dict | None:
    """Copies the drawing of `previous` (the folder a run replaces) into `staging` where it
    was drawn from the same raw tables (byte for byte) with the same `_drawing_key`, and
    its drawn files are as its meta.json records them (no `bench plot` redrew them since);
    returns that record, else None."""
    try:
        drawing = json.loads((previous / "meta.json").read_text()).get("drawing") or {}
        if drawing.get("key") != key:
            return None
        for name in schema.COLUMNS:
            old, new = previous / schema.file_name(name), staging / schema.file_name(name)
            if old.exists() != new.exists() or (
                new.exists() and old.read_bytes() != new.read_bytes()
            ):
                return None
        files = drawing["files"]
        if any(_file_digest(previous / name) != sha for name, sha in files.items()):
            return None
        for name in files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(previous / name, staging / name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return drawing


def _draw(
    staging: Path, tables: dict, spec: SuiteSpec, progress, previous: Path | None = None
) -> tuple[Exception | None, dict | None]:
    """Writes the raw tables into `staging` and draws them (`render.render`); returns the
    failure to draw, if any, and what meta.json records of the drawing (`_reuse_drawing`).

    The raw tables first: whatever drawing does, they reach the folder. A figure that
    cannot be drawn is skipped (one line on `progress`); any other failure is returned.
    Where `previous` holds a drawing of the same tables by the same code, it is copied
    instead of drawn again.
    """
    for name, frame in tables.items():
        write_csv(frame, staging / schema.file_name(name))
    key = _drawing_key(spec)
    if previous is not None:
        reused = _reuse_drawing(previous, staging, key)
        if reused is not None:
            return None, reused
    try:
        written = render.render(
            staging, progress, spec.cost, spec.problem_figures, spec.taus, known(spec.scale)
        )
    except Exception as error:
        return error, None
    files = {str(Path(path).relative_to(staging)): _file_digest(Path(path)) for path in written}
    return None, {"key": key, "files": files}


def _check_drawn(out: Path, failure: Exception | None) -> None:
    if failure is not None:
        raise RenderFailed(
            f"{out} holds the new raw tables, but drawing failed: "
            f"{type(failure).__name__}: {failure}; `python -m bench plot {out}` retries"
        ) from failure


def _excluded_row(problem: str, dim: int, reason: str) -> dict:
    return {"problem": problem, "dim": dim, "skipped": reason}


def _work(
    spec: SuiteSpec, pairs: list[tuple[str, str]], devices, cache: SweepCache | None
) -> list[tuple[list, tuple]]:
    """The units a run submits, in the spec's order, each as (the pairs it covers, the
    arguments of `_cached_unit`): one per pair, or one per problem for the pairs of a
    problem `sweep_problem` runs together."""
    work, grouped = [], {}
    for problem, optimizer in pairs:
        if resolved_by_run(spec.problem(problem)):
            if problem not in grouped:
                grouped[problem] = []
                work.append((grouped[problem], (sweep_problem, spec, problem, grouped[problem])))
            grouped[problem].append(optimizer)
        else:
            work.append(([optimizer], (sweep_pair, spec, problem, optimizer)))
    return [
        ([(args[2], o) for o in optimizers], (*args, devices, cache)) for optimizers, args in work
    ]


def _cached_unit(function, spec: SuiteSpec, problem: str, which, devices, cache) -> dict:
    """`function(spec, problem, which, devices, cache)` (`sweep_pair`, `sweep_problem`),
    its result read from the sweep cache where a run of the same sources, spec, unit and
    machine stored it (`SweepCache.get_unit`; never for a rule or problem defined outside
    the project), else computed and stored. A unit read from the cache took no compile or
    run seconds in this run."""
    key = None
    if cache is not None:
        optimizers = [which] if isinstance(which, str) else list(which)
        factories = [plugins.optimizer(name).factory for name in optimizers]
        arguments = (function.__name__, asdict(spec), problem, optimizers, devices)
        key = cache_keys.unit_key(spec.problem(problem), factories, arguments)
        found = cache.get_unit(key)
        if found is not None:
            return found | {"compile_seconds": 0.0, "run_seconds": 0.0}
    done = function(spec, problem, which, devices, cache)
    if cache is not None and key is not None:
        cache.put_unit(key, done)
    return done


def _in_worker(function, spec: SuiteSpec, problem: str, which, devices, cache) -> dict:
    """`_cached_unit` in a worker process (`bench.pool`), with the counts of the copy of the
    sweep cache it was given ("cache_counts"), for the run's own to add."""
    done = _cached_unit(function, spec, problem, which, devices, cache)
    return done if cache is None else done | {"cache_counts": cache.counts()}


def _longest_first(units: list[tuple[list, tuple]], out: Path) -> list[int]:
    """The order `run_suite` submits `units` in (indices): where `out` holds a readable
    runs.csv.gz of an earlier run, by the compile and run seconds it recorded for their
    pairs, longest first, those it does not record (cost unknown) before them, so that the
    long ones do not finish last on one core while the others wait; else, and in a
    multi-process job (whose processes must launch programs in one order), the spec's."""
    import jax

    order = list(range(len(units)))
    if jax.process_count() > 1:
        return order
    seconds = recorded_seconds(out)
    if seconds is None:  # no earlier run, or one whose table cannot say: the spec's order
        return order
    costs = [math.inf if c is None else c for c in unit_costs([u[0] for u in units], seconds)]
    return sorted(order, key=lambda i: -costs[i])


def run_suite(
    spec: SuiteSpec,
    out: Path,
    devices: int | None = None,
    progress=None,
    jobs: int | None = None,
    force: bool = False,
    base: Base | None = None,
    shard: Shard | None = None,
    cache: SweepCache | None = None,
    processes: bool = False,
) -> dict:
    """Sweeps every pair of `spec`, then writes the whole results folder `out` atomically.

    Returns the tidy tables by name. `progress`: a stream for the progress bar
    (default stderr); `jobs`: pairs in flight at once (default `default_jobs()`).
    The tables do not depend on `jobs`: pairs are collected in the spec's order.
    A symbolic link `out` is written through: its target is replaced. A run that is not
    the whole default suite does not replace a folder holding it unless `force`.
    `base`: results the new rows join (its tables first); `out` then holds both, under
    `base.spec`.
    `shard`: sweep only that shard's units of work (`bench.shards`); the folder records
    it in meta.json's `shard`, its fingerprint is the whole spec's.
    `cache`: the sweep cache (`bench.sweep.cache`) every sweep is looked up in first and
    stored in after; meta.json's timings count the sweeps it held and the seconds of
    those it did not. With a cache, the drawing of a folder `out` holds already is kept
    where it was drawn from the same raw tables by the same code (`_reuse_drawing`).
    `processes`: the units go through `jobs` worker processes where a fresh process
    resolves every name of the spec alike and the run is one process on a CPU
    (`bench.pool`; the caller's main module must not start a run when imported); else,
    and by default, through `jobs` threads.
    Raises OutputError (before sweeping anything) when `out` cannot or must not be written,
    and ValueError for a spec that cannot run.
    """
    check(spec)
    out = Path(out).resolve()
    written = spec if base is None else base.spec
    writer = distributed.is_writer()  # every process holds all lanes; process 0 writes them
    partial = shard is not None
    with (
        _staging_for(out, written, force, partial) if writer else contextlib.nullcontext()
    ) as staging:
        start = time.perf_counter()
        pairs, skipped, unresolved = [], [], {}
        for problem, optimizer in spec.pairs():
            too_fine = resolution_reason(spec.problem(problem), spec.dtype)
            reason = skip_reason(spec.problem(problem), plugins.optimizer(optimizer)) or too_fine
            if reason is None:
                pairs.append((problem, optimizer))
            else:
                skipped.append({"problem": problem, "optimizer": optimizer, "reason": reason})
                if reason == too_fine:
                    unresolved[problem] = reason
        for problem, reason in unresolved.items():  # said once: the tables say it per pair
            print(f"{problem}: {reason}; its pairs are skipped", file=progress or sys.stderr)

        units = _work(spec, pairs, devices, cache)
        dealt = None
        if shard is not None:  # this shard's units; the skipped pairs are shard 0's
            held = [(row["problem"], row["optimizer"]) for row in skipped]
            mine, dealt = shard.deal([unit[0] for unit in units], held)
            units = [units[i] for i in mine]
            pairs = [pair for unit in units for pair in unit[0]]
            skipped = skipped if shard.index == 0 else []
        bar = Progress(len(pairs), progress)
        parts: dict[str, list[pd.DataFrame]] = {}
        facts = [
            _excluded_row(problem, sources.facts(problem)[0], reason)
            for problem, reason in spec.excluded.items()
        ]
        compile_seconds = run_seconds = 0.0
        in_workers = processes and pool.workers_resolve(spec.optimizers, spec.problems)
        workers = pool.unit_pool(jobs or default_jobs(), in_workers)
        # a worker process counts the sweep cache on a copy of it (`_in_worker`)
        task = _in_worker if isinstance(workers, ProcessPoolExecutor) else _cached_unit
        finished: dict[int, dict] = {}
        try:
            futures = {workers.submit(task, *units[i][1]): i for i in _longest_first(units, out)}
            for future in as_completed(futures):
                finished[futures[future]] = future.result()
                for problem, optimizer in units[futures[future]][0]:
                    bar.advance(f"{problem} x {optimizer}")
        finally:
            pool.stop(workers, at_once=len(finished) < len(units))
        for i in range(len(units)):  # collected in the spec's order, whatever the finish
            done = finished[i]
            if cache is not None and "cache_counts" in done:
                cache.add_counts(done["cache_counts"])
            for name, frame in done["tables"].items():
                parts.setdefault(name, []).append(frame)
            facts += done.get("problems", [])
            compile_seconds += done["compile_seconds"]
            run_seconds += done["run_seconds"]
        tables = {name: schema.concat(frames) for name, frames in parts.items()}
        tables["skipped"] = pd.DataFrame(skipped, columns=["problem", "optimizer", "reason"])
        described = facts_frame([*spec.problems, *spec.excluded], spec.scale)
        tables["problems"] = complete_facts(pd.DataFrame(facts), described)
        if base is not None:
            tables = combined([base.tables, tables])
            skipped = tables["skipped"].to_dict("records")
        if staging is None:  # not the writer
            return tables

        previous = None if cache is None else out  # with the caches: a drawing is reused
        failure, drawing = _draw(staging, tables, spec, progress, previous)
        timings = {
            "jobs": jobs or default_jobs(),
            "pairs": len(pairs),
            "lanes": int(len(tables["runs"])) if "runs" in tables else 0,
            "compile_seconds": round(compile_seconds, 3),
            "run_seconds": round(run_seconds, 3),
            "total_wall_seconds": round(time.perf_counter() - start, 3),
        }
        if cache is not None:  # sweeps taken from the cache, sweeps run and stored
            timings["sweep_cache"] = {
                "units": cache.unit_hits,
                "hits": cache.hits,
                "stored": cache.misses,
            }
        record = meta.collect(written, timings, skipped, devices)
        record["full_suite"] = is_full(asdict(written)) and dealt is None
        if dealt is not None:
            record["shard"] = dealt
        if base is not None:
            record |= base.notes
        if drawing is not None:
            record["drawing"] = drawing
        write_text(meta.dumps(record), staging / "meta.json")
        swap_in(staging, out)
    _check_drawn(out, failure)
    return tables


def write_results(
    out: Path, tables: dict, record: dict, spec: SuiteSpec, force: bool = False, progress=None
) -> None:
    """Writes results joined from other folders (nothing swept) into `out` as `run_suite`
    writes its own: `tables`, everything drawn from them, `record` as meta.json (whose
    `full_suite` says whether it may stand for the whole default suite)."""
    out = Path(out).resolve()
    with _staging_for(out, spec, force, not record.get("full_suite", True)) as staging:
        failure, _ = _draw(staging, tables, spec, progress)
        write_text(meta.dumps(record), staging / "meta.json")
        swap_in(staging, out)
    _check_drawn(out, failure)


__all__ = [
    "Base",
    "NotAResultsFolder",
    "OutputError",
    "RenderFailed",
    "SpecError",
    "check",
    "combined",
    "is_full",
    "run_suite",
    "sweep_pair",
    "write_results",
]
