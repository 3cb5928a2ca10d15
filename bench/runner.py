"""The sweep runner: one compiled `jit(vmap(scan))` program per (problem, optimizer).

Every lane is one (hyperparameter point, seed) pair. Hyperparameters are traced
arguments of the compiled program, so a whole grid costs one compile and one call.
"""

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optimizers import OPTIMIZERS, OptimizerSpec, apply_updates
from problems import PROBLEMS, Problem

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class SweepResult:
    """Per-lane outcome of one sweep; arrays have the lane count as leading axis."""

    problem: str
    optimizer: str
    hparams: dict[str, np.ndarray]  # swept hyperparameter -> value per lane
    seeds: np.ndarray  # (lanes,)
    losses: np.ndarray  # (lanes, steps + 1): full-batch loss at step 0 .. steps
    grad_norms: np.ndarray  # (lanes, steps + 1): global gradient norm at the same points
    f_star: float
    target: float
    metrics: dict[str, np.ndarray]  # end-of-run problem metrics, per lane
    compile_seconds: float
    run_seconds: float

    @property
    def learning_rates(self) -> np.ndarray:
        return self.hparams["learning_rate"]

    @property
    def lanes(self) -> int:
        return len(self.seeds)


def resolve_problem(problem: str | Problem) -> Problem:
    if isinstance(problem, Problem):
        return problem
    if problem not in PROBLEMS:
        raise KeyError(f"unknown problem {problem!r}; choose from: {', '.join(PROBLEMS)}")
    return PROBLEMS[problem]


def resolve_optimizer(optimizer: str | Callable | OptimizerSpec) -> tuple[str, OptimizerSpec]:
    """A registry name, an `OptimizerSpec`, or any factory `f(learning_rate=..., **kw)`."""
    if isinstance(optimizer, OptimizerSpec):
        return optimizer.factory.__name__, optimizer
    if callable(optimizer):
        return optimizer.__name__, OptimizerSpec(optimizer, learning_rates=())
    if optimizer not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {optimizer!r}; choose from: {', '.join(OPTIMIZERS)}")
    return optimizer, OPTIMIZERS[optimizer]


def _cast_floats(tree, dtype):
    return jax.tree.map(
        lambda x: (
            jnp.asarray(x, dtype)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
            else jnp.asarray(x)
        ),
        tree,
    )


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def _lane_program(problem: Problem, spec: OptimizerSpec, steps: int, dtype, fixed: Mapping):
    """One lane: (swept hyperparameters, seed) -> loss and gradient-norm curves, metrics."""
    data = _cast_floats(problem.data(), dtype)
    grad_fn = jax.value_and_grad(problem.loss)

    def lane(swept: dict[str, jax.Array], seed: jax.Array):
        init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
        params = _cast_floats(problem.init(init_key), dtype)
        opt = spec.factory(**swept, **fixed)
        state = opt.init(params)

        def step(carry, step_key):
            params, state = carry
            full_loss, full_grads = grad_fn(params, data)
            if problem.stochastic:
                batch = problem.sample_batch(data, step_key)
                loss, grads = grad_fn(params, batch)
            else:
                batch, loss, grads = data, full_loss, full_grads
            extra = {}
            if spec.needs_value_fn:
                extra = dict(value=loss, grad=grads, value_fn=lambda p: problem.loss(p, batch))
            updates, state = opt.update(grads, state, params, **extra)
            return (apply_updates(params, updates), state), (full_loss, _global_norm(full_grads))

        step_keys = jax.random.split(batch_key, steps)
        (params, _), (losses, norms) = jax.lax.scan(step, (params, state), step_keys)
        last_loss, last_grads = grad_fn(params, data)
        losses = jnp.append(losses, last_loss)
        norms = jnp.append(norms, _global_norm(last_grads))
        metrics = {name: fn(params) for name, fn in problem.metrics.items()}
        return losses, norms, metrics

    return lane


def run_sweep(
    problem: str | Problem,
    optimizer: str | Callable | OptimizerSpec,
    learning_rates: Sequence[float] | None = None,
    seeds: Sequence[int] | int = 5,
    steps: int | None = None,
    dtype: str = "float32",
    **hyperparameters: Any,
) -> SweepResult:
    """Runs every (learning rate x other swept hyperparameter x seed) lane in one program.

    problem: a `PROBLEMS` name or a `Problem`. optimizer: an `OPTIMIZERS` name, an
    `OptimizerSpec`, or a factory called as `factory(learning_rate=lr, **hyperparameters)`.
    learning_rates defaults to the registry grid; seeds is a list or a count (0..n-1);
    steps defaults to the problem's budget. A hyperparameter given as a list is swept
    (traced, one lane per value); a scalar, bool or string is passed through as is.
    Registry hyperparameters (say momentum=0.9 for "momentum") apply unless overridden.
    """
    problem = resolve_problem(problem)
    name, spec = resolve_optimizer(optimizer)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    learning_rates = spec.learning_rates if learning_rates is None else learning_rates
    if len(learning_rates) == 0:
        raise ValueError("learning_rates is empty: give at least one learning rate")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    steps = problem.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")

    options = {**spec.hparams, **hyperparameters}
    grid = {"learning_rate": list(learning_rates)}
    grid |= {k: list(v) for k, v in options.items() if isinstance(v, list | tuple | np.ndarray)}
    fixed = {k: v for k, v in options.items() if k not in grid}
    points = list(itertools.product(*grid.values(), seeds))
    swept = {k: np.array([p[i] for p in points]) for i, k in enumerate(grid)}
    lane_seeds = np.array([p[-1] for p in points], dtype=np.uint32)

    program = jax.jit(jax.vmap(_lane_program(problem, spec, steps, jnp.dtype(dtype), fixed)))
    swept_args = {k: jnp.asarray(v, dtype) for k, v in swept.items()}
    start = time.perf_counter()
    compiled = program.lower(swept_args, lane_seeds).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    losses, norms, metrics = jax.block_until_ready(compiled(swept_args, lane_seeds))
    run_seconds = time.perf_counter() - start

    return SweepResult(
        problem=problem.name,
        optimizer=name,
        hparams=swept,
        seeds=lane_seeds.astype(np.int64),
        losses=np.asarray(losses, np.float64),
        grad_norms=np.asarray(norms, np.float64),
        f_star=problem.f_star,
        target=problem.target,
        metrics={k: np.asarray(v, np.float64) for k, v in metrics.items()},
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
    )
