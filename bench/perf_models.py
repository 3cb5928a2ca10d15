"""Sweep throughput on the model families: the runner against one trial at a time.

For the CNN and the transformer language model at `cpu` scale (problems.MODELS), Adam
trained on minibatches two ways:

- ours: `run_sweep` as `make bench` calls it (every lane of a learning-rate x seed grid
  in one compiled program, the evaluation batch's loss recorded at the log-spaced record
  points, the compile level chosen by the runner);
- optax_loop: a Python loop over a jitted optax Adam step, one trial at a time, the
  minibatch drawn inside the step from the step's key, the data passed to the step as an
  argument, the loss of every step kept (how most training scripts are written).

Throughput is trial-steps per second: lanes x steps / seconds for the sweep, steps /
seconds for one trial of the loop. The target (bench.perf_report.SWEEP_TARGETS) is the
sweep at 3x the loop or more.
"""

import time

import jax
import numpy as np
import optax

from bench.perf_kernels import median_seconds
from bench.perf_sweeps import SweepCase
from bench.runner import run_sweep
from problems import model

MODEL_CASES = ("cnn_digits", "transformer_stdlib")


def model_cases(quick: bool = False) -> list[SweepCase]:
    """The CNN and the transformer at cpu scale (tiny with `quick`), 9 x 2 lanes as
    make bench tunes them."""
    if quick:
        return [SweepCase(model(name, "tiny"), name, 5, 2, 1) for name in MODEL_CASES]
    return [SweepCase(model(name, "cpu"), name, 100, 9, 2) for name in MODEL_CASES]


def learning_rates(points: int) -> list[float]:
    return list(np.logspace(-4, -1, points))


def ours(case: SweepCase, repeats: int = 2) -> dict:
    """Median run seconds over `repeats` sweeps (the compiled program is reused), compile
    seconds of the first."""
    results = [
        run_sweep(
            case.problem,
            "adam",
            learning_rates(case.learning_rates),
            seeds=case.seeds,
            steps=case.steps,
            record_points=60,
        )
        for _ in range(repeats)
    ]
    return {
        "seconds": float(np.median([r.run_seconds for r in results])),
        "compile_seconds": results[0].compile_seconds,
        "optimized": results[0].optimized,
    }


def optax_loop(case: SweepCase, runs: int = 2) -> dict:
    """Median seconds of one trial: a Python loop over a jitted optax Adam step."""
    problem = case.problem
    opt = optax.adam(1e-3)
    value_and_grad = jax.value_and_grad(problem.loss)

    @jax.jit
    def step(params, state, data, key):
        loss, grads = value_and_grad(params, problem.sample_batch(data, key))
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    data = jax.device_put(problem.data())
    params = problem.init(jax.random.PRNGKey(0))
    state = opt.init(params)
    keys = list(jax.random.split(jax.random.PRNGKey(1), case.steps))
    start = time.perf_counter()
    jax.block_until_ready(step(params, state, data, keys[0]))  # compile outside the timing
    compile_seconds = time.perf_counter() - start

    def one_run():
        p, s = params, state
        losses = []
        for key in keys:
            p, s, loss = step(p, s, data, key)
            losses.append(loss)
        jax.block_until_ready(losses)

    seconds = median_seconds(one_run, budget=0.0, max_reps=runs)
    return {"seconds": seconds, "compile_seconds": compile_seconds}


def run_models(cases: list[SweepCase], log=print) -> list[dict]:
    """Rows of section `sweep` (as bench.perf_sweeps writes them) for each case and way."""
    rows = []
    for case in cases:
        for impl, measure in (("ours", ours), ("optax_loop", optax_loop)):
            lanes = case.lanes if impl == "ours" else 1
            result = measure(case)
            optimized = result.pop("optimized", None)
            row = dict(section="sweep", case=case.problem.name, impl=impl, layout="", lanes=lanes)
            row |= dict(size=case.problem.dim, steps=case.steps, **result)
            row["steps_per_second"] = lanes * case.steps / result["seconds"]
            rows.append(row)
            level = "" if optimized is None else f" (optimize={optimized})"
            seconds = result["seconds"]
            log(f"models: {case.problem.name} {impl}: {seconds:.3f}s, {lanes} lanes{level}")
    return rows
