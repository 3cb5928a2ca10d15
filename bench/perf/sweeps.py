"""Whole-sweep throughput: our vmapped sweep against one run at a time.

Three ways to run the same (problem, Adam, learning rate) training:

- ours: the runner's `jit(vmap(scan))` program, every lane of a learning-rate x seed
  grid in one call (`bench.run_sweep`, curves recorded at every step);
- optax_loop: a Python loop over a jitted optax step, one run at a time, the loss of
  every step kept (how most training scripts are written);
- optax_scan: one run as a single jitted `lax.scan` of the optax step;
- torch: `torch.optim.Adam` in a Python loop, one run at a time (CPU build, optional).

Throughput is optimizer steps per second over all lanes: lanes x steps / seconds for a
sweep, steps / seconds-per-run for the one-run-at-a-time baselines.
"""

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.perf.kernels import median_seconds
from bench.sweep.runner import run_sweep
from problems import PROBLEMS, Problem
from problems.logistic import logistic_regression


@dataclass(frozen=True)
class SweepCase:
    problem: Problem
    # which torch twin of the loss: "rosenbrock", "logistic" or "mlp" (a model: its name)
    kind: str
    steps: int
    learning_rates: int  # lanes = learning_rates x seeds
    seeds: int

    @property
    def lanes(self) -> int:
        return self.learning_rates * self.seeds


def default_cases(quick: bool = False) -> list[SweepCase]:
    """2-D Rosenbrock, a 1000 x 20 logistic regression and the one-hidden-layer ReLU MLP."""
    logistic = logistic_regression(n=1000, dim=20, l2=1e-2)
    mlp = PROBLEMS["mlp_digits_relu_32"]
    if quick:
        return [
            SweepCase(PROBLEMS["rosenbrock_2d"], "rosenbrock", 20, 2, 2),
            SweepCase(logistic, "logistic", 20, 2, 2),
            SweepCase(mlp, "mlp", 5, 2, 1),
        ]
    return [
        SweepCase(PROBLEMS["rosenbrock_2d"], "rosenbrock", 1000, 64, 8),
        SweepCase(logistic, "logistic", 1000, 64, 8),
        # The MLP is compute-bound (a 256 x 64 x 32 x 10 net): fewer lanes, its own budget.
        SweepCase(mlp, "mlp", 200, 8, 4),
    ]


def learning_rate_grid(points: int) -> np.ndarray:
    return np.logspace(-4, -1, points)


def ours_optimized(case: SweepCase) -> dict:
    """`ours` compiled with `optimize=True` (XLA's defaults) instead of the fast compile."""
    return ours(case, optimize=True)


def ours(
    case: SweepCase, repeats: int = 3, enough_seconds: float = 1.0, optimize: bool = False
) -> dict:
    """Compile seconds of the first call; median run seconds over up to `repeats` calls.

    Each `run_sweep` call builds and compiles its program anew, so the run is timed once
    per call, compile excluded, and the call repeated while the runs are short (under
    `enough_seconds` in all), where one timing is noisy.
    """
    results = []
    while len(results) < repeats and sum(r.run_seconds for r in results) < enough_seconds:
        results.append(
            run_sweep(
                case.problem,
                "adam",
                learning_rates=list(learning_rate_grid(case.learning_rates)),
                seeds=case.seeds,
                steps=case.steps,
                optimize=optimize,
            )
        )
    return {
        "seconds": float(np.median([r.run_seconds for r in results])),
        "compile_seconds": results[0].compile_seconds,
    }


def _optax_step(problem: Problem, learning_rate: float):
    opt = optax.adam(learning_rate)
    data = problem.data()
    value_and_grad = jax.value_and_grad(problem.loss)

    def step(params, state):
        loss, grads = value_and_grad(params, data)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return opt, step


def optax_loop(case: SweepCase, runs: int = 3) -> dict:
    """Median seconds of one run: a Python loop over a jitted optax step."""
    opt, step = _optax_step(case.problem, 1e-3)
    step = jax.jit(step)
    params = case.problem.init(jax.random.PRNGKey(0))
    state = opt.init(params)
    jax.block_until_ready(step(params, state))  # compile outside the timing

    def one_run():
        p, s = params, state
        losses = []
        for _ in range(case.steps):
            p, s, loss = step(p, s)
            losses.append(loss)
        jax.block_until_ready(losses)

    return {"seconds": median_seconds(one_run, budget=0.0, max_reps=runs)}


def optax_scan(case: SweepCase) -> dict:
    """Median seconds of one run as a single jitted `lax.scan` (no vmap)."""
    opt, step = _optax_step(case.problem, 1e-3)

    def run(params):
        def body(carry, _):
            p, s, loss = step(*carry)
            return (p, s), loss

        return jax.lax.scan(body, (params, opt.init(params)), length=case.steps)

    params = case.problem.init(jax.random.PRNGKey(0))
    start = time.perf_counter()
    compiled = jax.jit(run).lower(params).compile()
    compile_seconds = time.perf_counter() - start
    seconds = median_seconds(lambda: jax.block_until_ready(compiled(params)), budget=0.2)
    return {"seconds": seconds, "compile_seconds": compile_seconds}


def bare_vmap(case: SweepCase) -> dict:
    """Median seconds of the same lanes as one jitted `vmap(scan)` of optax steps that
    records nothing but the loss: the floor under `ours`, at XLA's default level."""
    learning_rates = np.repeat(learning_rate_grid(case.learning_rates), case.seeds)
    keys = jax.random.split(jax.random.PRNGKey(0), case.lanes)

    def lane(learning_rate, key):
        opt, step = _optax_step(case.problem, learning_rate)
        params = case.problem.init(key)

        def body(carry, _):
            p, s, loss = step(*carry)
            return (p, s), loss

        return jax.lax.scan(body, (params, opt.init(params)), length=case.steps)[1]

    args = (jnp.asarray(learning_rates, jnp.float32), keys)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(lane)).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    seconds = median_seconds(lambda: jax.block_until_ready(compiled(*args)), budget=1.0)
    return {"seconds": seconds, "compile_seconds": compile_seconds}


def elementwise_rows(n: int = 512_000) -> list[dict]:
    """Median seconds of XLA:CPU's `exp` and `log1p` over n float32 numbers."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal(n, dtype=np.float32))
    rows = []
    for name, fn in (("exp", jnp.exp), ("log1p", lambda v: jnp.log1p(jnp.abs(v)))):
        compiled = jax.jit(fn).lower(x).compile()
        seconds = median_seconds(lambda c=compiled: jax.block_until_ready(c(x)), budget=0.3)
        rows.append(dict(section="elementwise", case=name, impl="xla", layout="flat", size=n))
        rows[-1] |= dict(lanes=1, seconds=seconds)
    return rows


def _torch_loss(kind: str, problem: Problem):
    """The problem's loss written with torch operations, on the same data."""
    import torch  # pyright: ignore[reportMissingImports]  # the optional `perf` extra

    data = problem.data()
    if kind == "rosenbrock":  # the instance: the raw function at x_raw + (x - x_star)
        x_raw, x_star = (torch.tensor(np.asarray(data[k])) for k in ("raw_minimiser", "minimiser"))

        def rosenbrock(x):
            z = x_raw.to(x.dtype) + (x - x_star.to(x.dtype))
            return torch.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2)

        return rosenbrock
    if kind == "logistic":
        x, y = (torch.tensor(np.asarray(a)) for a in data)
        l2 = problem.loss.keywords["l2"]

        def logistic(params):
            logits = x @ params["w"] + params["b"]
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            return bce + 0.5 * l2 * torch.sum(params["w"] ** 2)

        return logistic
    if kind == "mlp":
        x, y = torch.tensor(np.asarray(data[0])), torch.tensor(np.asarray(data[1])).long()

        def mlp(params):
            h = x.to(params[0]["w"].dtype)
            for layer in params[:-1]:
                h = torch.relu(h @ layer["w"] + layer["b"])
            logits = h @ params[-1]["w"] + params[-1]["b"]
            return torch.nn.functional.cross_entropy(logits, y)

        return mlp
    raise ValueError(f"no torch loss for kind {kind!r}")


def torch_adam_seconds(initial, step_losses: list, runs: int) -> float:
    """Median seconds of one run of `torch.optim.Adam` (lr 1e-3) from the arrays `initial`
    (a pytree), one step per loss in `step_losses` (each a function of the torch params),
    every step's loss kept, after one warm-up run.

    torch runs on one thread: on problems this small a second thread only adds
    synchronisation (it made the loop several times slower on the 2-core machine).
    """
    import torch  # pyright: ignore[reportMissingImports]  # the optional `perf` extra

    def one_run():
        params = jax.tree.map(lambda a: torch.tensor(a, requires_grad=True), initial)
        opt = torch.optim.Adam(jax.tree.leaves(params), lr=1e-3)
        losses = []
        for step_loss in step_losses:
            opt.zero_grad()
            loss = step_loss(params)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return losses

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_run()  # warm-up
        return median_seconds(one_run, budget=0.0, max_reps=runs)
    finally:
        torch.set_num_threads(threads)


def torch_loop(case: SweepCase, runs: int = 3) -> dict:
    """Median seconds of one run of `torch.optim.Adam` in a Python loop, float32, CPU."""
    loss_fn = _torch_loss(case.kind, case.problem)
    initial = jax.tree.map(np.asarray, case.problem.init(jax.random.PRNGKey(0)))
    return {"seconds": torch_adam_seconds(initial, [loss_fn] * case.steps, runs)}


def torch_version() -> str | None:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # the optional `perf` extra
    except ImportError:
        return None
    return torch.__version__


def run_sweeps(cases: list[SweepCase], log=print) -> list[dict]:
    """One row per (problem, way of running): seconds, steps per second, lanes."""
    rows = []
    for case in cases:
        runners = {"ours": ours, "ours_optimize": ours_optimized, "bare_vmap": bare_vmap}
        runners |= {"optax_loop": optax_loop, "optax_scan": optax_scan}
        if torch_version() is not None:
            runners["torch"] = torch_loop
        for impl, measure in runners.items():
            lanes = case.lanes if impl in ("ours", "ours_optimize", "bare_vmap") else 1
            result = measure(case)
            row = dict(section="sweep", case=case.problem.name, impl=impl, layout="", lanes=lanes)
            row |= dict(size=case.problem.dim, steps=case.steps, **result)
            row["steps_per_second"] = lanes * case.steps / result["seconds"]
            rows.append(row)
            log(f"sweeps: {case.problem.name} {impl}: {result['seconds']:.4f}s, {lanes} lanes")
    return rows


def lane_scaling(cases: list[SweepCase], lane_counts, log=print) -> list[dict]:
    """Run time and compile time of our sweep as the lane count grows (one seed per lane).

    Each case runs at most 100 steps here: the cost per step is what scales.
    """
    rows = []
    for case in cases:
        steps = min(case.steps, 100)
        for lanes in lane_counts:
            result = run_sweep(
                case.problem,
                "adam",
                learning_rates=list(learning_rate_grid(lanes)),
                seeds=1,
                steps=steps,
                optimize=False,  # make bench's fast compile at every lane count
            )
            row = dict(section="lanes", case=case.problem.name, impl="ours", layout="")
            row |= dict(size=case.problem.dim, lanes=lanes, steps=steps)
            row |= dict(seconds=result.run_seconds, compile_seconds=result.compile_seconds)
            row["steps_per_second"] = lanes * steps / result.run_seconds
            rows.append(row)
        log(f"lanes: {case.problem.name} done")
    return rows
