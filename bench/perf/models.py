"""Sweep throughput on the model families: the runner against one trial at a time.

For the CNN and the transformer language model at `cpu` scale (problems.MODELS), Adam
trained on minibatches two ways:

- ours: `run_sweep` as `make bench` calls it (every lane of a learning-rate x seed grid
  in one compiled program, the problem's step budget, the evaluation batch's loss
  recorded at the suite's log-spaced record points, the compile level chosen by the
  runner);
- bare_vmap: the same lanes as one jitted `vmap(scan)` of optax Adam steps that records
  nothing but each step's minibatch loss, at XLA's default level: the floor under ours,
  what the network's own arithmetic costs;
- optax_loop: a Python loop over a jitted optax Adam step, one trial at a time, the
  minibatch drawn inside the step from the step's key, the data passed to the step as an
  argument, the loss of every step kept (how most training scripts are written);
- torch: `torch.optim.Adam` on the same network in a Python loop, one trial at a time
  (bench.perf.torch_models; where torch is installed).

Throughput is trial-steps per second: lanes x steps / seconds for the sweep, steps /
seconds for one trial of the loop. The target (`sweep_targets` in bench/perf/targets.toml)
is the sweep at 3x the loop or more.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import spec as suite_spec
from bench.perf.kernels import median_seconds
from bench.perf.sweeps import SweepCase, torch_version
from bench.sweep.runner import run_sweep
from problems import Problem, model

MODEL_CASES = ("cnn_digits", "transformer_stdlib")


def model_cases(quick: bool = False) -> list[SweepCase]:
    """The CNN and the transformer at cpu scale with their own step budgets, 9 learning
    rates x 2 seeds as make bench tunes them (tiny and 5 steps with `quick`)."""
    if quick:
        return [SweepCase(model(name, "tiny"), name, 5, 2, 1) for name in MODEL_CASES]
    cases = []
    for name in MODEL_CASES:
        problem = model(name, "cpu")
        cases.append(SweepCase(problem, name, problem.steps, 9, 2))
    return cases


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
            record_points=suite_spec.load().curve_points,
        )
        for _ in range(repeats)
    ]
    return {
        "seconds": float(np.median([r.run_seconds for r in results])),
        "compile_seconds": results[0].compile_seconds,
        "optimized": results[0].optimized,
    }


def _optax_step(problem: Problem, learning_rate):
    """(optimizer, step): one optax Adam step on a minibatch drawn from `key`."""
    opt = optax.adam(learning_rate)
    value_and_grad = jax.value_and_grad(problem.loss)
    sample_batch = problem.sample_batch
    if sample_batch is None:
        raise ValueError(f"{problem.name} trains on the full batch: no minibatch to draw")

    def step(params, state, data, key):
        loss, grads = value_and_grad(params, sample_batch(data, key))
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return opt, step


def bare_vmap(case: SweepCase) -> dict:
    """Median seconds of the sweep's lanes as one jitted `vmap(scan)` of optax steps that
    records only each step's minibatch loss, compiled at XLA's default level."""
    problem = case.problem
    lanes = [(lr, seed) for lr in learning_rates(case.learning_rates) for seed in range(case.seeds)]

    def lane(data, learning_rate, seed):
        opt, step = _optax_step(problem, learning_rate)
        init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
        params = problem.init(init_key)

        def body(carry, key):
            params, state = carry
            params, state, loss = step(params, state, data, key)
            return (params, state), loss

        keys = jax.random.split(batch_key, case.steps)
        return jax.lax.scan(body, (params, opt.init(params)), keys)[1]

    data = jax.device_put(problem.data())
    args = (
        data,
        jnp.asarray([lr for lr, _ in lanes], jnp.float32),
        jnp.asarray([seed for _, seed in lanes], jnp.uint32),
    )
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(lane, in_axes=(None, 0, 0))).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    seconds = median_seconds(lambda: jax.block_until_ready(compiled(*args)), 0.0, max_reps=2)
    return {"seconds": seconds, "compile_seconds": compile_seconds}


def optax_loop(case: SweepCase, runs: int = 2) -> dict:
    """Median seconds of one trial: a Python loop over a jitted optax Adam step."""
    problem = case.problem
    opt, step = _optax_step(problem, 1e-3)
    step = jax.jit(step)
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
    """Rows of section `sweep` (as bench.perf.sweeps writes them) for each case and way."""
    runners = {"ours": ours, "bare_vmap": bare_vmap, "optax_loop": optax_loop}
    if torch_version() is not None:
        from bench.perf.torch_models import torch_model_loop

        runners["torch"] = torch_model_loop
    rows = []
    for case in cases:
        for impl, measure in runners.items():
            lanes = case.lanes if impl in ("ours", "bare_vmap") else 1
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
