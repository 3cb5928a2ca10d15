"""The sweep runner: one compiled `jit(vmap(scan))` program per (problem, optimizer).

Every lane is one (trial, seed) pair, a trial being one point of the hyperparameter
grid: its id (`SweepResult.trials`) and its values. Hyperparameters are traced
arguments of the compiled program, so a whole grid costs one compile and one call.
What a lane does is `bench.sweep.lane`; how its program is compiled, sized in chunks
and kept, `bench.sweep.program`; this module puts them together (`run_sweep`).
"""

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from bench import plugins, protocols
from bench.sweep import cache as cache_keys
from bench.sweep import distributed, targets
from bench.sweep.arguments import check_sweep, warn_below_f_star
from bench.sweep.cache import SweepCache
from bench.sweep.lane import (
    DTYPES,
    fold_indices,
    lane_inputs,
    lane_program,
    log_step_grid,
    master_dtype,
    program_inputs,
)
from bench.sweep.program import (
    LINALG_LOCK,
    cached,
    chunk_that_fits,
    compiler_options,
    fast_level,
    memory_budget,
    split_lanes,
    tree_bytes,
)
from optimizers import OptimizerSpec
from problems import Problem


@dataclass(frozen=True)
class SweepResult:
    """Per-lane outcome of one sweep; arrays have the lane count as leading axis."""

    problem: str
    optimizer: str
    hparams: dict[str, np.ndarray]  # swept hyperparameter -> value per lane
    # (lanes,): the trial of each lane, numbering the grid's settings 0, 1, ... in order.
    trials: np.ndarray
    seeds: np.ndarray  # (lanes,)
    # The record points: steps 0 .. steps, or a log-spaced subset (`log_step_grid`).
    record_steps: np.ndarray  # (points,)
    losses: np.ndarray  # (lanes, points): full-batch loss at the record points
    grad_norms: np.ndarray  # (lanes, points): global gradient norm at the same points
    # (lanes, points): cumulative loss-and-gradient evaluations the rule has made by then,
    # as its registry entry counts them (`OptimizerSpec.evaluations`).
    grad_evals: np.ndarray
    f_star: float
    target: float
    metrics: dict[str, np.ndarray]  # end-of-run problem metrics, per lane
    compile_seconds: float
    run_seconds: float
    # (lanes, points, 2): the iterates, for problems with two parameters.
    paths: np.ndarray | None = None
    # (lanes, points, layers): per-layer gradient norms, for problems that define them.
    layer_grad_norms: np.ndarray | None = None
    # (lanes,): the held-out fold of each lane, for cross-validation sweeps.
    folds: np.ndarray | None = None
    # Wall-clock seconds per step of one lane: the run's time over its calls, steps and
    # lanes per call (padding included), to three significant digits.
    seconds_per_step: float = float("nan")
    # The relative levels' targets (`targets.level_targets`: name -> tau (f(x0) - f*),
    # NaN where the dtype cannot resolve it); None where f* is not known yet.
    levels: dict[str, float] | None = None
    # Where the targets were judged at every step (problems trained on their full batch,
    # `lane.lane_program`): "first" and "lasting" (docs/method.md, "f* and the target"),
    # each (lanes, targets) steps and gradient evaluations made before them, -1 where
    # never; the targets are the problem's own, then each of `levels`. None where they
    # are judged at the record points (minibatch problems, model families, a target
    # resolved after the run).
    reached: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    # Lanes per call of the compiled program (the memory the lanes need may lower it below
    # the chunk asked for), whether it was compiled with XLA's default options, and else
    # the LLVM optimisation level of its fast compile (`program.fast_level`).
    chunk: int = 0
    optimized: bool = False
    level: int | None = None
    # True where the outputs came from the sweep cache (`cache`): the compile and run
    # seconds are then those of the run that stored them.
    cached: bool = False

    @property
    def learning_rates(self) -> np.ndarray:
        return self.hparams["learning_rate"]

    @property
    def lanes(self) -> int:
        return len(self.seeds)


def resolve_problem(problem: str | Problem) -> Problem:
    """A `Problem`, or the name of one (see `bench.plugins.problem`)."""
    return problem if isinstance(problem, Problem) else plugins.problem(problem)


def resolve_optimizer(optimizer: str | Callable | OptimizerSpec) -> tuple[str, OptimizerSpec]:
    """A name (see `bench.plugins.optimizer`), an `OptimizerSpec`, or any factory
    `f(learning_rate=..., **kw)`: a function, a `functools.partial`, a class."""
    if isinstance(optimizer, OptimizerSpec):
        return plugins.factory_name(optimizer.factory), optimizer
    if callable(optimizer):
        return plugins.factory_name(optimizer), OptimizerSpec(optimizer, learning_rates=())
    return optimizer, plugins.optimizer(optimizer)


def run_sweep(
    problem: str | Problem,
    optimizer: str | Callable | OptimizerSpec,
    learning_rates: Sequence[float] | None = None,
    seeds: Sequence[int] | int = 5,
    steps: int | None = None,
    dtype: str = "float32",
    devices: int | None = None,
    folds: int | None = None,
    optimize: bool = False,
    record_points: int | None = None,
    chunk: int | None = None,
    trials: Sequence[Mapping[str, float]] | None = None,
    memory_limit: int | None = None,
    levels: Mapping[str, float] | None = None,
    cache: SweepCache | None = None,
    **hyperparameters: Any,
) -> SweepResult:
    """Runs every (trial x seed) lane in one program.

    A trial is one hyperparameter setting. By default the trials are the points of a
    grid, numbered in its order (learning rates outermost, then the other swept
    hyperparameters as given); `trials` gives them instead as a list of settings, each a
    dict of the same hyperparameters with a learning_rate (a random search's points),
    numbered in the list's order.

    problem: a `PROBLEMS` name or a `Problem`. optimizer: an `OPTIMIZERS` name, an
    `OptimizerSpec`, or a factory called as `factory(learning_rate=lr, **hyperparameters)`.
    learning_rates defaults to the registry grid; seeds is a list or a count (0..n-1);
    steps defaults to the problem's budget. A hyperparameter given as a list is swept
    (traced, one lane per value); a scalar, bool or string is passed through as is.
    Registry hyperparameters (say momentum=0.9 for "momentum") apply unless overridden.
    The lanes are sharded over the first `devices` devices (default: all of them).
    folds=k (data-set problems) runs k-fold cross-validation: every lane is repeated
    once per fold, trains without that fold and reports its `validation_loss`.
    optimize=True compiles with XLA's default options instead of the fast compile
    (`program.FAST_COMPILE`: the loop emitters, LLVM at level 0 for a program expected to
    run briefly, else level 1): a slower compile, and on the problems measured no faster
    a run.
    record_points=n records the curves at about n log-spaced steps (`log_step_grid`)
    instead of every step. chunk=n runs the lanes n at a time through one program
    compiled for n lanes (the last chunk padded): a later sweep of the same pair, steps
    and options with lanes in chunks of the same size calls that program again. Lanes
    whose program needs more than `memory_limit` bytes per device (default: MEMORY_SHARE
    of the device's memory, `memory_budget`) run in smaller chunks, sized from the
    compiled program's own memory analysis.
    dtype: float32, float64 or bfloat16 (mixed precision: bfloat16 compute, float32
    parameters and optimizer state).
    levels: name -> tau of relative targets tau (f(x0) - f*) to judge every lane at
    besides the problem's own (`targets.problem_levels`; the suite's are
    `bench.results.schema.LEVELS`); None: the own target only.
    cache: a `SweepCache` to take the outputs from where it holds this sweep's program
    and inputs, and to store them in otherwise (`bench.sweep.cache`); None: always run.
    """
    problem = resolve_problem(problem)
    name, spec = resolve_optimizer(optimizer)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    # jax's Config sets its flags as attributes at run time: its type declares none of them
    if dtype == "float64" and not jax.config.jax_enable_x64:  # pyright: ignore[reportAttributeAccessIssue]
        raise ValueError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    steps = problem.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if memory_limit is not None and not memory_limit > 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")
    if optimize not in (True, False):
        raise ValueError(f"optimize must be True or False, got {optimize!r}")

    options = {**spec.hparams, **hyperparameters}
    if trials is None:
        trials = protocols.grid_trials(
            spec.learning_rates if learning_rates is None else learning_rates, options
        )
    else:
        trials = protocols.listed_trials(trials, learning_rates, hyperparameters)
    fixed = {k: v for k, v in options.items() if k not in trials[0]}
    swept_lists = [k for k, v in fixed.items() if isinstance(v, list | tuple | np.ndarray)]
    if swept_lists:
        raise ValueError(
            f"{', '.join(swept_lists)} of {name} is a list, which sweeps a grid: with trials, "
            "give its value in every trial instead"
        )
    check_sweep(problem, name, spec, trials, fixed, seeds)
    split, fold_ids = None, [None]
    if folds is not None:
        if "dataset" not in problem.tags:
            raise ValueError(f"folds needs a data-set problem; {problem.name} has no data set")
        split = fold_indices(len(jax.tree.leaves(problem.data())[0]), folds)
        fold_ids = list(range(folds))
    points = list(itertools.product(range(len(trials)), seeds, fold_ids))
    swept = {k: np.array([float(trials[p[0]][k]) for p in points]) for k in trials[0]}
    lane_trials = np.array([p[0] for p in points])
    lane_seeds = np.array([p[1] for p in points], dtype=np.uint32)
    lane_folds = None if folds is None else np.array([p[2] for p in points], dtype=np.int32)

    record_steps = (
        np.arange(steps + 1) if record_points is None else log_step_grid(steps, record_points)
    )
    levels = None if levels is None else targets.problem_levels(problem, levels, dtype)
    lane_args = ({k: v.astype(master_dtype(dtype)) for k, v in swept.items()}, lane_seeds)
    lane_args += () if lane_folds is None else (lane_folds,)
    own = lane_inputs(problem, lane_seeds, dtype)  # each lane's data (BBOB's instances)
    lane_args += () if own is None else (own,)
    lanes = len(lane_seeds)
    mesh = distributed.lane_mesh(devices)
    inputs = distributed.replicate(program_inputs(problem, dtype), mesh)
    limit = memory_budget(mesh) if memory_limit is None else memory_limit
    chunk = lanes if chunk is None else chunk
    # What the program depends on; problem and optimizer by identity.
    fixed_items = tuple(sorted((k, type(v), v) for k, v in fixed.items()))  # 1 and 1.0 differ
    common_key = (id(problem), id(spec), steps, dtype, fixed_items, tuple(trials[0]), folds)
    common_key += (optimize, tuple(record_steps), tuple(d.id for d in mesh.devices.flat))
    arguments = (name, steps, dtype, repr(fixed_items), folds, tuple(record_steps), levels)
    arguments += (optimize, chunk, limit, mesh.devices.size)
    compile_seconds = 0.0

    def lowering(chunks, size: int):
        """The lowered program of `chunks`' lanes, its compile level and its key: kept
        with the compiled programs, so that a later sweep of the same shapes lowers
        nothing."""

        def lower():
            lane = lane_program(problem, spec, steps, dtype, fixed, split, record_steps, levels)
            in_axes = (None, 0, 0) + (0,) * (len(lane_args) - 2)
            lowered = jax.jit(jax.vmap(lane, in_axes=in_axes)).lower(inputs, *chunks[0])
            level = None if optimize else fast_level(lowered, steps)
            return lowered, level, cache_keys.digest(lowered.as_text())

        return cached(("lowered", *common_key, size), (problem, spec), lower)

    found = key = quick = None
    if cache is not None:
        start = time.perf_counter()
        inputs_digest = cache_keys.digest(
            cache_keys.tree_digest(inputs), cache_keys.tree_digest(lane_args)
        )
        quick = cache_keys.quick_key(problem, spec.factory, arguments, inputs_digest)
        found = cache.get(cache.program_key_of(quick))
        if found is None:
            _, level, text = lowering(split_lanes(lane_args, lanes, chunk, mesh)[1], chunk)
            key = cache_keys.program_key(text, compiler_options(level), arguments, inputs_digest)
            found = cache.get(key)
            if found is not None:
                cache.remember(quick, key)
        compile_seconds += time.perf_counter() - start
    if found is not None:
        outputs, facts = found
        chunk = int(facts["chunk"])
        # entries stored before the level was chosen per program were compiled at level 1
        level = facts.get("level", None if facts["optimized"] else 1)
        padded = -(-lanes // chunk) * chunk
        run_seconds = facts["run_seconds"]
        compile_seconds = facts["compile_seconds"]
    else:
        while True:
            padded, chunks = split_lanes(lane_args, lanes, chunk, mesh)

            def build(chunks=chunks, size=chunk):
                lowered, level, _ = lowering(chunks, size)
                compiled = lowered.compile(compiler_options(level))
                text = compiled.as_text()
                if text is None:
                    raise RuntimeError("the compiled sweep has no text to look for LAPACK calls in")
                lock = LINALG_LOCK if "lapack" in text else None
                return compiled, lock, level

            start = time.perf_counter()
            compiled, lock, level = cached((*common_key, chunk), (problem, spec), build)
            compile_seconds += time.perf_counter() - start
            fitting = chunk_that_fits(compiled, chunk, limit, tree_bytes(inputs))
            if fitting >= chunk:
                break
            chunk = fitting
        with lock or contextlib.nullcontext():
            start = time.perf_counter()
            outputs = [
                distributed.gather(jax.block_until_ready(compiled(inputs, *c)), chunk)
                for c in chunks
            ]
            run_seconds = time.perf_counter() - start
        outputs = jax.tree.map(lambda *parts: np.concatenate(parts)[:lanes], *outputs)
        if cache is not None and key is not None:
            facts = {"chunk": chunk, "optimized": level is None, "level": level}
            facts |= {"compile_seconds": compile_seconds, "run_seconds": run_seconds}
            cache.put(key, quick, outputs, facts)
    seconds_per_step = rounded_time(run_seconds / (padded * (steps + 1)))
    curves, metrics, reached = outputs
    if folds is None:  # a fold's training loss has a minimum of its own, not f_star
        warn_below_f_star(problem, np.asarray(curves["loss"], np.float64))

    return SweepResult(
        problem=problem.name,
        optimizer=name,
        hparams=swept,
        trials=lane_trials,
        seeds=lane_seeds.astype(np.int64),
        record_steps=record_steps,
        losses=np.asarray(curves["loss"], np.float64),
        grad_norms=np.asarray(curves["grad_norm"], np.float64),
        grad_evals=np.asarray(curves["grad_evals"], np.float64),
        f_star=math.nan if problem.f_star is None else problem.f_star,
        target=problem.target,
        metrics={k: np.asarray(v, np.float64) for k, v in metrics.items()},
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        paths=_optional(curves.get("path")),
        layer_grad_norms=_optional(curves.get("layer_grad_norms")),
        folds=lane_folds,
        seconds_per_step=seconds_per_step,
        levels=levels,
        reached=(
            None
            if reached is None
            else {k: (np.asarray(s), np.asarray(e)) for k, (s, e) in reached.items()}
        ),
        chunk=chunk,
        optimized=level is None,
        level=level,
        cached=found is not None,
    )


def rounded_time(seconds: float) -> float:
    """A wall-clock time to three significant digits, all that a shared machine keeps."""
    return float(f"{seconds:.3g}")


def _optional(array) -> np.ndarray | None:
    return None if array is None else np.asarray(array, np.float64)
