"""The sweep runner: one compiled `jit(vmap(scan))` program per (problem, optimizer).

Every lane is one (trial, seed) pair, a trial being one point of the hyperparameter
grid: its id (`SweepResult.trials`) and its values. Hyperparameters are traced
arguments of the compiled program, so a whole grid costs one compile and one call.
"""

import collections
import contextlib
import functools
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench import plugins, protocols
from bench.sweep import distributed
from bench.sweep.arguments import check_sweep, warn_below_f_star
from optimizers import OptimizerSpec, apply_updates
from problems import Problem

DTYPES = ("float32", "float64", "bfloat16")
# bfloat16 is mixed precision: the loss and its gradient are computed in bfloat16 on
# float32 master weights (and float32 optimizer state), as mixed-precision training does.
MIXED = jnp.dtype(jnp.bfloat16)
# Compiling dominates a benchmark of many short sweeps (docs/runner.md, "Compile level"), so by
# default a sweep is compiled for a fast compile: LLVM at optimisation level 0 (about 2x
# faster to compile, 3-7x slower to run) and XLA:CPU's older loop emitters instead of
# its MLIR fusion emitters (again about 2x faster to compile, 0-25% slower to run).
# `optimize=True` keeps XLA's defaults, for long sweeps; `optimize=None` (run_sweep's
# default) lets the runner choose from the sweep's expected run time (`expected_seconds`).
# A third option compiles each program as one LLVM module: with pairs compiled in parallel
# already, splitting a small program for parallel code generation costs more than it saves.
COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
# optimize=None compiles at XLA's default level when the run is expected to take longer
# than this: the default level's compile costs about 0.5-1 s more per program on the
# 2-core CPU and repays it within seconds on a long run (3-7x faster).
OPTIMIZE_AFTER_SECONDS = 8.0
# What a level-0 program sustains on that CPU, for the expected run time: floating-point
# operations and bytes accessed per second, as XLA's cost analysis of the lowered
# (unoptimised) program counts them. Measured there: the MLPs run at 10-13 GFLOP/s
# (estimate 0.72 s, run 0.57 s for 10 lanes of the deep sigmoid MLP with Adam), the
# networks of problems.MODELS faster than estimated (the end-of-run metrics are counted
# once per step). The pairs of PROBLEMS in make bench are estimated at 4.4 s or less
# (shampoo on the noisy quadratic; every rule was estimated on the MLPs, the softmax
# regression and the noisy quadratic), the model families at 12 s (autoencoder) to 850 s
# (transformer).
LEVEL0_FLOPS = 1e10
LEVEL0_BYTES = 1e11
# The share of a device's memory one sweep's program may take (a CPU's physical memory,
# an accelerator's own); lanes that need more run in chunks (`run_sweep`'s `chunk`).
MEMORY_SHARE = 0.5


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
    # (lanes,): the first step whose loss is at the target, and the gradient evaluations
    # made before it (-1: never), where every step's loss is the full-batch loss at the
    # iterate (deterministic problems); None where the target is judged at the record
    # points only (minibatch problems, rules with their own evaluation point).
    first_hit: tuple[np.ndarray, np.ndarray] | None = None
    # Lanes per call of the compiled program (the memory the lanes need may lower it below
    # the chunk asked for), and whether it was compiled at XLA's default level.
    chunk: int = 0
    optimized: bool = False

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


def _cast_floats(tree, dtype):
    return jax.tree.map(
        lambda x: (
            jnp.asarray(x, dtype)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
            else jnp.asarray(x)
        ),
        tree,
    )


@functools.cache
def _value_and_grad(loss) -> Callable[..., tuple[jax.Array, Any]]:
    """jit(value_and_grad(loss)), one per loss: JAX traces it once for every optimizer."""
    return jax.jit(jax.value_and_grad(loss))


@functools.cache
def mixed_precision(loss):
    """`loss` computed in bfloat16 from float32 (master) parameters and data: the
    parameters and the batch's floats are cast to bfloat16 on the way in, the loss back
    to float32, so that its gradient with respect to the master weights is float32."""

    def mixed(params, batch):
        value = loss(_cast_floats(params, MIXED), _cast_floats(batch, MIXED))
        return jnp.asarray(value).astype(jnp.float32)

    return mixed


def master_dtype(dtype) -> jnp.dtype:
    """The dtype of the parameters and optimizer state: float32 under mixed precision."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == MIXED else dtype


def compute_loss(problem: Problem, dtype):
    """The loss the sweep differentiates: the problem's, or its mixed-precision form."""
    return mixed_precision(problem.loss) if jnp.dtype(dtype) == MIXED else problem.loss


def program_inputs(problem: Problem, dtype) -> dict:
    """What a sweep's program takes as arguments besides its lanes: the training data
    (`train`, floats in the compute dtype; None where a problem has no data) and, for
    problems that declare it, the held-out data of their metrics (`test`)."""
    inputs = {"train": _cast_floats(problem.data(), jnp.dtype(dtype))}
    if problem.test_data is not None:
        inputs["test"] = _cast_floats(problem.test_data(), jnp.dtype(dtype))
    return inputs


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def fold_indices(examples: int, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) example indices per fold: shapes (folds, n - n//folds), (folds, n//folds).

    The examples are shuffled once by a fixed key, then cut into `folds` equal blocks;
    the `examples % folds` left over always train, so every fold has the same shapes.
    """
    if not 2 <= folds <= examples:
        raise ValueError(f"folds must be between 2 and the {examples} examples, got {folds}")
    order = np.asarray(jax.random.permutation(jax.random.PRNGKey(0), examples))
    size = examples // folds
    held_out = order[: size * folds].reshape(folds, size)
    train = np.stack([np.setdiff1d(order, block) for block in held_out])
    return train, held_out


def log_step_grid(steps: int, points: int = 100) -> np.ndarray:
    """Step indices 0..steps, every step for short runs, else about `points` log-spaced ones."""
    if steps + 1 <= points:
        return np.arange(steps + 1)
    grid = np.unique(np.round(np.logspace(0, np.log10(steps), points)).astype(int))
    return np.concatenate([[0], grid])


def _train_step(problem: Problem, spec: OptimizerSpec, opt, loss_fn):
    """One training step of one lane: (params, state, training data, key) -> the new params
    and state, the loss and gradient the update was given, and the evaluations it made."""
    grad_fn = _value_and_grad(loss_fn)

    def step(params, state, train, key):
        batch = problem.sample_batch(train, key) if problem.sample_batch is not None else train
        loss, grads = grad_fn(params, batch)
        extra = spec.update_extras(loss, grads, lambda p: loss_fn(p, batch))
        updates, state = opt.update(grads, state, params, **extra)
        made = spec.evaluations(state, problem.dim)
        return apply_updates(params, updates), state, (loss, grads), made

    return step


def reached_threshold(problem: Problem, dtype) -> float:
    """The largest loss of `dtype` at the target: for a loss x of that dtype,
    x <= this exactly when x - f_star <= target in float64 (`records.first_reached`);
    -inf where f_star is not known (None: a suite resolves it after the run)."""
    if problem.f_star is None:  # nothing is at a target that is not known yet
        return -math.inf
    bound = np.float64(problem.f_star) + np.float64(problem.target)
    rounded = np.asarray(bound, dtype)
    if np.float64(rounded) > bound:
        rounded = np.nextafter(rounded, np.asarray(-np.inf, dtype))
    return float(rounded)


def _lane_program(
    problem: Problem,
    spec: OptimizerSpec,
    steps: int,
    dtype,
    fixed: Mapping,
    folds=None,
    record_steps=None,
):
    """One lane: (inputs, swept hyperparameters, seed[, fold]) -> recorded curves, end metrics.

    `inputs` is `program_inputs`' dict, the data every lane shares, passed to the compiled
    program as an argument, never baked into it as a constant. Curves (loss, gradient
    norm, cumulative gradient evaluations, the iterate for 2-D problems, per-layer
    gradient norms where the problem defines them) are taken at `record_steps` (default:
    every step 0 .. steps), and only there (evaluation runs on its own cadence):
    - a problem with an `eval_batch` records the training loss on that fixed batch (a
      forward pass only) and the norms of the gradient the step's update was given;
    - any other records the full-batch loss and gradient, taken from the update where its
      gradient is that one (full batch, at the iterate), else computed.
    With `folds` = (train, held-out) index arrays the lane trains on its fold's training
    examples and reports the held-out loss as the metric `validation_loss`. Where every
    step's update is given the full-batch loss at the iterate, the lane also returns the
    first step at the target and the evaluations made before it (-1, -1: never), exact
    to the step rather than to the record grid. With dtype bfloat16 the loss is computed
    in bfloat16 from float32 parameters and state (`mixed_precision`).
    """
    dtype = jnp.dtype(dtype)
    master = master_dtype(dtype)
    loss_fn = compute_loss(problem, dtype)
    grad_fn = _value_and_grad(loss_fn)
    folds = None if folds is None else tuple(jnp.asarray(f) for f in folds)
    record_steps = np.arange(steps + 1) if record_steps is None else np.asarray(record_steps)
    # Per step: its row among the record points, or len(record_steps) where it records none.
    slots = np.full(steps + 1, len(record_steps))
    slots[record_steps] = np.arange(len(record_steps))
    batch_eval = problem.eval_batch is not None
    reuse = not problem.stochastic and spec.eval_params is None and not batch_eval
    threshold = reached_threshold(problem, master)

    def record(params, loss, grads, evaluations):
        out = {"loss": loss, "grad_norm": _global_norm(grads), "grad_evals": evaluations}
        if problem.dim == 2:
            out["path"] = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)])
        if problem.layer_grad_norms is not None:
            out["layer_grad_norms"] = problem.layer_grad_norms(grads)
        return out

    def lane(inputs, swept: dict[str, jax.Array], seed: jax.Array, fold=None):
        data, test = inputs["train"], inputs.get("test")
        train, held_out = data, None
        if folds is not None:
            train_examples, held_out_examples = folds
            train = jax.tree.map(lambda x: x[train_examples[fold]], data)
            held_out = jax.tree.map(lambda x: x[held_out_examples[fold]], data)
        evaluation = problem.eval_batch(train) if problem.eval_batch is not None else None
        init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
        params = _cast_floats(problem.init(init_key), master)
        opt = spec.factory(**swept, **fixed)
        state = opt.init(params)
        train_step = _train_step(problem, spec, opt, loss_fn)

        def step(carry, xs):
            params, state, _, evaluations, records, hit = carry
            step_key, slot, index = xs
            # The loss is recorded at the rule's evaluation point where it declares one
            # (schedule-free rules), else at the iterate the gradient is taken at.
            point = params if spec.eval_params is None else spec.eval_params(state, params)
            new_params, new_state, used, made = train_step(params, state, train, step_key)

            def evaluate(records):
                if batch_eval:
                    row = record(point, loss_fn(point, evaluation), used[1], evaluations)
                else:
                    row = record(point, *(used if reuse else grad_fn(point, train)), evaluations)
                return jax.tree.map(lambda rows, x: rows.at[slot].set(x), records, row)

            # `slot` is the same in every lane, so under vmap this stays a branch.
            records = jax.lax.cond(slot < len(record_steps), evaluate, lambda r: r, records)
            first = (hit[0] < 0) & (used[0] <= threshold)
            hit = (jnp.where(first, index, hit[0]), jnp.where(first, evaluations, hit[1]))
            return (new_params, new_state, point, evaluations + made, records, hit), None

        # steps + 1 iterations reach steps 0 .. steps; the update made by the last one is
        # dropped (its input evaluation point is kept in the carry for the end metrics).
        step_keys = jax.random.split(batch_key, steps)
        step_keys = jnp.concatenate([step_keys, step_keys[-1:]])
        none = jnp.zeros([], jnp.float32)  # cumulative evaluations before the first step
        probe = evaluation if batch_eval else train  # a batch the loss accepts
        rows = jax.eval_shape(lambda p: record(p, *grad_fn(p, probe), none), params)
        records = jax.tree.map(lambda x: jnp.zeros((len(record_steps), *x.shape), x.dtype), rows)
        never = (jnp.int32(-1), -jnp.ones([], jnp.float32))
        carry = (params, state, params, none, records, never)
        xs = (step_keys, jnp.asarray(slots), jnp.arange(steps + 1, dtype=jnp.int32))
        (_, _, params, _, curves, hit), _ = jax.lax.scan(step, carry, xs)
        if test is None:
            metrics = {name: fn(params) for name, fn in problem.metrics.items()}
        else:  # held-out metrics in the compute dtype, on the data passed in
            computed = _cast_floats(params, dtype)
            metrics = {name: fn(computed, test) for name, fn in problem.metrics.items()}
        if held_out is not None:
            metrics["validation_loss"] = loss_fn(params, held_out)
        return curves, metrics, (hit if reuse else None)

    return lane


def run_sweep(
    problem: str | Problem,
    optimizer: str | Callable | OptimizerSpec,
    learning_rates: Sequence[float] | None = None,
    seeds: Sequence[int] | int = 5,
    steps: int | None = None,
    dtype: str = "float32",
    devices: int | None = None,
    folds: int | None = None,
    optimize: bool | None = None,
    record_points: int | None = None,
    chunk: int | None = None,
    trials: Sequence[Mapping[str, float]] | None = None,
    memory_limit: int | None = None,
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
    optimize=True compiles at XLA's default optimisation level instead of level 0:
    a slower compile for a faster run, the better choice when a sweep runs for seconds;
    optimize=False always compiles at level 0; optimize=None (the default) chooses the
    default level when the run is expected to take over OPTIMIZE_AFTER_SECONDS
    (`expected_seconds`), else level 0.
    record_points=n records the curves at about n log-spaced steps (`log_step_grid`)
    instead of every step. chunk=n runs the lanes n at a time through one program
    compiled for n lanes (the last chunk padded): a later sweep of the same pair, steps
    and options with lanes in chunks of the same size calls that program again. Lanes
    whose program needs more than `memory_limit` bytes per device (default: MEMORY_SHARE
    of the device's memory, `memory_budget`) run in smaller chunks, sized from the
    compiled program's own memory analysis.
    dtype: float32, float64 or bfloat16 (mixed precision: bfloat16 compute, float32
    parameters and optimizer state).
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
    if optimize not in (None, True, False):
        raise ValueError(f"optimize must be True, False or None (automatic), got {optimize!r}")

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
    lane_args = ({k: v.astype(master_dtype(dtype)) for k, v in swept.items()}, lane_seeds)
    lane_args += () if lane_folds is None else (lane_folds,)
    lanes = len(lane_seeds)
    mesh = distributed.lane_mesh(devices)
    inputs = distributed.replicate(program_inputs(problem, dtype), mesh)
    limit = memory_budget(mesh) if memory_limit is None else memory_limit
    chunk = lanes if chunk is None else chunk
    # What the program depends on; problem and optimizer by identity.
    fixed_items = tuple(sorted((k, type(v), v) for k, v in fixed.items()))  # 1 and 1.0 differ
    common_key = (id(problem), id(spec), steps, dtype, fixed_items, tuple(trials[0]), folds)
    common_key += (optimize, tuple(record_steps), tuple(d.id for d in mesh.devices.flat))
    compile_seconds = 0.0
    while True:
        padded, chunks = _chunks(lane_args, lanes, chunk, mesh)

        def build(chunks=chunks):
            lane = _lane_program(problem, spec, steps, dtype, fixed, split, record_steps)
            in_axes = (None, 0, 0) + ((0,) if lane_folds is not None else ())
            lowered = jax.jit(jax.vmap(lane, in_axes=in_axes)).lower(inputs, *chunks[0])
            level = optimize
            if level is None:
                level = expected_seconds(lowered, steps, len(chunks)) > OPTIMIZE_AFTER_SECONDS
            compiled = lowered.compile({} if level else COMPILER_OPTIONS)
            text = compiled.as_text()
            if text is None:
                raise RuntimeError("the compiled sweep has no text to look for LAPACK calls in")
            lock = _LINALG_LOCK if "lapack" in text else None
            return compiled, lock, level

        start = time.perf_counter()
        compiled, lock, optimized = _compiled((*common_key, chunk), (problem, spec), build)
        compile_seconds += time.perf_counter() - start
        fitting = chunk_that_fits(compiled, chunk, limit, _bytes(inputs))
        if fitting >= chunk:
            break
        chunk = fitting
    with lock or contextlib.nullcontext():
        start = time.perf_counter()
        outputs = [
            distributed.gather(jax.block_until_ready(compiled(inputs, *c)), chunk) for c in chunks
        ]
        run_seconds = time.perf_counter() - start
    seconds_per_step = rounded_time(run_seconds / (padded * (steps + 1)))
    outputs = jax.tree.map(lambda *parts: np.concatenate(parts)[:lanes], *outputs)
    curves, metrics, first_hit = outputs
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
        first_hit=(
            None if first_hit is None else (np.asarray(first_hit[0]), np.asarray(first_hit[1]))
        ),
        chunk=chunk,
        optimized=bool(optimized),
    )


def _chunks(lane_args, lanes: int, chunk: int, mesh) -> tuple[int, list]:
    """The lanes padded to a multiple of `chunk` (by repeating the last), cut into chunks,
    each sharded over the mesh: (padded lane count, chunks)."""
    padded = -(-lanes // chunk) * chunk
    lane_args = jax.tree.map(
        lambda x: np.concatenate([x, np.repeat(x[-1:], padded - lanes)]), lane_args
    )

    def take(first):
        return jax.tree.map(lambda x: x[first : first + chunk], lane_args)

    return padded, [distributed.shard_lanes(take(i), mesh)[0] for i in range(0, padded, chunk)]


def _bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def memory_budget(mesh) -> int:
    """Bytes one sweep's program may take on each device of `mesh`: MEMORY_SHARE of an
    accelerator's memory (as its runtime reports it for this process's first device), or
    of the host's physical memory. (In a multi-host job every host must come to the same
    chunk: hosts of one kind do; else give run_sweep a memory_limit.)"""
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    try:
        stats = (local or list(mesh.devices.flat))[0].memory_stats()
    except Exception:  # a device whose runtime keeps no memory statistics
        stats = None
    total = (stats or {}).get("bytes_limit")
    if total is None:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(MEMORY_SHARE * total)


def program_bytes(compiled) -> int | None:
    """The memory a compiled program needs per device (arguments, outputs and temporaries,
    from XLA's buffer assignment), or None where the backend does not say."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # a backend without memory analysis
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def chunk_that_fits(compiled, chunk: int, limit: int, shared: int) -> int:
    """The largest chunk of lanes whose program fits in `limit` bytes, estimated from the
    compiled program for `chunk` lanes: the `shared` bytes (the data every lane reads) once,
    the rest in proportion to the lanes. `chunk` itself when it fits (or when the backend
    gives no memory analysis); at least 1."""
    needed = program_bytes(compiled)
    if needed is None or needed <= limit or chunk == 1:
        return chunk
    per_lane = max(needed - shared, 1) / chunk
    return max(1, min(chunk - 1, int((limit - shared) // per_lane)))


def expected_seconds(lowered, steps: int, calls: int) -> float:
    """The run time a program is expected to take at optimisation level 0: XLA's cost
    analysis of the lowered program (floating-point operations and bytes accessed, which
    count the body of the step loop once: one step of every lane, with its evaluation
    branch) at LEVEL0_FLOPS and LEVEL0_BYTES, times the steps and calls. 0 where the
    backend gives no cost analysis."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # a backend without cost analysis
        return 0.0
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    cost = cost or {}
    per_step = max(
        float(cost.get("flops", 0.0)) / LEVEL0_FLOPS,
        float(cost.get("bytes accessed", 0.0)) / LEVEL0_BYTES,
    )
    return per_step * (steps + 1) * calls


def rounded_time(seconds: float) -> float:
    """A wall-clock time to three significant digits, all that a shared machine keeps."""
    return float(f"{seconds:.3g}")


# Compiled sweep programs, the most recent _KEPT, for a later sweep with lanes of the same
# shapes (a tuned setting re-run on its evaluation seeds): key -> (objects the key names
# by id, kept alive so that no other object takes the id, and the program).
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_KEPT = 16
_PROGRAMS_LOCK = threading.Lock()
# jaxlib's CPU LAPACK kernels (eigh, QR, SVD, triangular solves, ...) spread a batch of
# matrices over XLA's intra-op thread pool and wait for it from a thread of that pool:
# two such programs running at once (two pairs of `--jobs 2`) can take every thread of
# the pool and wait on each other forever. They run one at a time; other programs
# still run beside them.
_LINALG_LOCK = threading.Lock()


def _compiled(key: tuple, objects: tuple, build: Callable):
    """The program compiled earlier under `key`, else `build()`'s, kept under `key`.

    A key that cannot be hashed (a fixed hyperparameter such as a dict) is not kept.
    """
    try:
        hash(key)
    except TypeError:
        return build()
    with _PROGRAMS_LOCK:
        if key in _PROGRAMS:
            _PROGRAMS.move_to_end(key)
            return _PROGRAMS[key][1]
    program = build()
    with _PROGRAMS_LOCK:
        _PROGRAMS[key] = (objects, program)
        while len(_PROGRAMS) > _KEPT:
            _PROGRAMS.popitem(last=False)
    return program


def _optional(array) -> np.ndarray | None:
    return None if array is None else np.asarray(array, np.float64)
