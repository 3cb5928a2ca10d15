"""Update-kernel timing: one optimizer step plus `apply_updates`, ours and optax's side by side.

A kernel is `(params, state, grads) -> (params, state)` compiled with params and state
donated, so XLA may update them in place, as a training loop that owns its buffers does.
Its traffic is counted from the arrays it touches: params, grads and every state leaf
read once, params and every state leaf written once. A streaming update `x <- a x + b`
on a donated float32 vector, timed at the same sizes in the same process, gives the
bandwidth that traffic is compared with.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optimizers
from optimizers import OPTIMIZERS, OptimizerSpec
from optimizers.fused import MULTI_OUTPUT_FUSION_FLAG, fused_step

LEARNING_RATE = 1e-3
# A rule whose state holds more than this many times its parameters' bytes keeps dense
# preconditioners (a d x d matrix per axis of d entries, Shampoo's): the kernels time it
# at the smallest size only, where its matrices are at most a thousand or so wide; above,
# a 1e5-entry vector's statistic alone would take 40 GB.
MAX_STATE_RATIO = 8
PYTREE_LEAVES = 20


def median_seconds(call: Callable[[], object], budget: float = 0.15, max_reps: int = 50) -> float:
    """Median wall time of `call()` (which must block until its result is ready)."""
    return interleaved_medians({"call": call}, budget, max_reps)["call"]


def interleaved_medians(
    calls: dict[str, Callable[[], object]], budget: float = 0.15, max_reps: int = 50
) -> dict[str, float]:
    """Median wall time of each call, timed in turn so that load changes hit all alike.

    Repeats the round until `budget` seconds are spent or `max_reps` rounds are made,
    at least 5 (for budget 0: exactly `max_reps`). Every other round runs the calls in
    reverse order, so that none always finds the caches as the same other call left them.
    """
    times = {name: [] for name in calls}
    start, rounds = time.perf_counter(), 0
    while rounds < min(5, max_reps) or (rounds < max_reps and time.perf_counter() - start < budget):
        order = list(calls.items())
        for name, call in order if rounds % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: float(np.median(t)) for name, t in times.items()}


def flat_params(n: int, seed: int = 0) -> jax.Array:
    """n float32 numbers from N(0, 1), drawn with NumPy (no XLA program to compile)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n, dtype=np.float32))


def pytree_params(n: int, seed: int = 0) -> dict[str, jax.Array]:
    """`PYTREE_LEAVES` leaves totalling n parameters, mixed sizes (weights 1, 2, 4, 8, 16)."""
    weights = np.array([2.0 ** (i % 5) for i in range(PYTREE_LEAVES)])
    sizes = np.maximum(1, np.floor(n * weights / weights.sum()).astype(int))
    sizes[-1] += n - sizes.sum()
    values = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    ends = np.cumsum(sizes)
    return {
        f"leaf{i:02d}": jnp.asarray(values[end - size : end])
        for i, (size, end) in enumerate(zip(sizes, ends, strict=True))
    }


def make_params(layout: str, n: int, seed: int = 0) -> object:
    return flat_params(n, seed) if layout == "flat" else pytree_params(n, seed)


def stream_step(x):
    """The bandwidth reference: read x once, write it once (8 bytes per float32)."""
    return 1.0001 * x + 1e-4


def streaming_seconds(n: int) -> float:
    """Median time of the in-place streaming update on n float32 numbers."""
    step = jax.jit(stream_step, donate_argnums=0)
    box = [step(jnp.zeros((n,), jnp.float32))]

    def call():
        box[0] = step(box[0])
        box[0].block_until_ready()

    return median_seconds(call)


def tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def build(spec: OptimizerSpec, impl: str):
    """(transformation, step) for our rule ("ours"), our rule in `fused_step` ("fused")
    or optax's alias of the same name ("optax"); step(params, state, grads)."""
    kwargs = {"learning_rate": LEARNING_RATE, **spec.hparams}
    if impl == "optax":
        if spec.optax_name is None:
            name = getattr(spec.factory, "__name__", repr(spec.factory))
            raise ValueError(f"{name} has no optax counterpart")
        opt = getattr(optax, spec.optax_name)(**kwargs)
        return opt, kernel(opt, optax.apply_updates)
    opt = spec.factory(**kwargs)
    if impl == "fused":  # timed only under the multi-output fusion flag: no warning
        return opt, fused_step(opt)
    return opt, kernel(opt, optimizers.apply_updates)


def state_ratio(spec: OptimizerSpec, params) -> float:
    """Bytes of our rule's state for `params` over the parameters' own, found without
    allocating either."""
    opt = spec.factory(learning_rate=LEARNING_RATE, **spec.hparams)
    state = jax.eval_shape(opt.init, params)
    return tree_bytes(state) / tree_bytes(params)


def kernel(opt, apply_updates):
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return apply_updates(params, updates), state

    return step


def count_fusions(compiled_text: str) -> int:
    """Fused array loops launched from the entry computation: each is one pass over its data.

    Fusions producing only scalars (the step count, bias corrections) are left out.
    """
    entry = compiled_text[compiled_text.index("\nENTRY") :]
    shapes = re.findall(r"= (\(.*?\)|\S+) fusion\(", entry)
    return sum(1 for shape in shapes if re.search(r"\[\d", shape))


def compile_kernel(opt, step, params, grads, donate: bool = True) -> dict:
    """The compiled kernel, a blocking call that steps it, and its static facts."""
    state = opt.init(params)
    jitted = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    start = time.perf_counter()
    compiled = jitted.lower(params, state, grads).compile()
    compile_seconds = time.perf_counter() - start
    box = [jax.tree.map(jnp.copy, (params, state))]

    def call():
        out = compiled(*box[0], grads)
        if donate:  # the outputs own the donated buffers: feed them back
            box[0] = out
        jax.block_until_ready(out)

    call()  # warm-up
    text = compiled.as_text()
    if text is None:
        raise RuntimeError("XLA gave no text of the compiled kernel to count its fusions in")
    return {
        "call": call,
        "compile_seconds": compile_seconds,
        "bytes": 2 * tree_bytes(params) + tree_bytes(grads) + 2 * tree_bytes(state),
        "fusions": count_fusions(text),
    }


def timing_budget(n: int) -> float:
    """Seconds of interleaved rounds per kernel comparison: more where the ratio is judged.

    At 1e6 parameters and up a step takes milliseconds and a few rounds leave the median
    at the mercy of one slow round on a shared machine.
    """
    return 1.0 if n >= 1_000_000 else 0.15


def time_kernels(
    builds: dict[str, tuple[Any, Callable]], params, grads, donate: bool = True
) -> dict[str, dict]:
    """impl -> compile time, median step time (interleaved), traffic and fusion count."""
    # XLA compiles outside the GIL: one thread per kernel uses both cores of a 2-core CPU.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(builds)) as pool:
        futures = {
            impl: pool.submit(compile_kernel, opt, step, params, grads, donate)
            for impl, (opt, step) in builds.items()
        }
        kernels = {impl: future.result() for impl, future in futures.items()}
    n = sum(x.size for x in jax.tree.leaves(params))
    calls = {impl: k.pop("call") for impl, k in kernels.items()}
    seconds = interleaved_medians(calls, budget=timing_budget(n), max_reps=400)
    return {impl: k | {"seconds": seconds[impl]} for impl, k in kernels.items()}


def optax_available(spec: OptimizerSpec) -> bool:
    return spec.optax_name is not None and hasattr(optax, spec.optax_name)


def run_kernels(
    sizes, layouts=("flat", "pytree"), names=None, log=print, fused: bool = False
) -> tuple[list, list]:
    """Times every registered optimizer's kernel, ours and optax's, at each size and layout.

    `fused` also times our rule in `fused_step`.

    Returns (rows, notes): tidy rows for perf.csv and one note per optimizer skipped.
    """
    names = list(OPTIMIZERS) if names is None else names
    rows, notes = [], []
    stream = {n: streaming_seconds(n) for n in sizes}
    for n in sizes:
        rows.append(
            dict(section="stream", case="stream", impl="xla", layout="flat", size=n, lanes=1)
            | {"seconds": stream[n], "bytes": 8 * n, "gbps": 8 * n / stream[n] / 1e9}
        )
    inputs = {}
    for layout in layouts:
        for n in sizes:
            params = make_params(layout, n)
            inputs[layout, n] = (
                params,
                jax.tree.map(lambda p: jnp.asarray(1e-2 * np.cos(p)), params),
            )
    for name in names:
        spec = OPTIMIZERS[name]
        if spec.needs_value_fn:
            notes.append(f"{name}: line search (needs the loss function), no kernel timed")
            continue
        impls = ["ours", "optax"] if optax_available(spec) else ["ours"]
        impls += ["fused"] if fused else []
        if "optax" not in impls:
            missing = "counterpart" if spec.optax_name is None else f"`{spec.optax_name}` alias"
            notes.append(f"{name}: optax has no {missing}, ours timed alone")
        for layout in layouts:
            for n in sizes:
                params, grads = inputs[layout, n]
                ratio = state_ratio(spec, params)
                if n > min(sizes) and ratio > MAX_STATE_RATIO:
                    notes.append(
                        f"{name} ({layout}, n={n}): its state would be {ratio:,.0f}x the "
                        "parameters (dense preconditioners), not timed at this size"
                    )
                    continue
                try:
                    results = time_kernels({i: build(spec, i) for i in impls}, params, grads)
                except Exception as error:  # a rule in progress must not stop the report
                    notes.append(f"{name} ({layout}, n={n}): {type(error).__name__}: {error}")
                    continue
                for impl, result in results.items():
                    row = dict(section="kernel", case=name, impl=impl, layout=layout, size=n)
                    row |= dict(lanes=1, **result)
                    row["gbps"] = result["bytes"] / result["seconds"] / 1e9
                    row["stream_fraction"] = row["gbps"] / (8 * n / stream[n] / 1e9)
                    rows.append(row)
        log(f"kernels: {name} done")
    return rows, notes


def donation_rows(names, n: int) -> list[dict]:
    """The same kernels compiled without donation: XLA must allocate fresh outputs."""
    rows = []
    params = flat_params(n)
    grads = jnp.asarray(1e-2 * np.cos(params))
    for name in names:
        spec = OPTIMIZERS[name]
        impls = ["ours", "optax"] if optax_available(spec) else ["ours"]
        results = time_kernels({i: build(spec, i) for i in impls}, params, grads, donate=False)
        for impl, result in results.items():
            row = dict(section="kernel_no_donation", case=name, impl=impl, layout="flat", size=n)
            rows.append(row | dict(lanes=1, **result))
    return rows


def multi_output_fusion_rows(names, n: int) -> list[dict]:
    """The flat kernels at size n, ours, optax's and ours in `fused_step`, in a fresh
    process with XLA:CPU multi-output fusion on (`optimizers.fused.MULTI_OUTPUT_FUSION_FLAG`).

    XLA_FLAGS is read once per process, hence the subprocess; rows come back as JSON.
    """
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {MULTI_OUTPUT_FUSION_FLAG}".strip()
    done = subprocess.run(
        [sys.executable, "-m", "bench.perf.kernels", str(n), *names],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return [row | {"section": "kernel_mof"} for row in rows if row["section"] == "kernel"]


if __name__ == "__main__":
    measured, _ = run_kernels(
        (int(sys.argv[1]),), ("flat",), sys.argv[2:], log=lambda m: None, fused=True
    )
    for measured_row in measured:
        print(json.dumps(measured_row))
