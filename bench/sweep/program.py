"""How a sweep's program is compiled, sized and kept: the compile level, the expected
run time it is chosen from, the memory budget and the chunks of lanes that fit it, and
the programs kept for a later sweep of the same shapes.
"""

import collections
import os
import threading
from collections.abc import Callable

import jax
import numpy as np

from bench.sweep import distributed

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


def split_lanes(lane_args, lanes: int, chunk: int, mesh) -> tuple[int, list]:
    """The lanes padded to a multiple of `chunk` (by repeating the last), cut into chunks,
    each sharded over the mesh: (padded lane count, chunks)."""
    padded = -(-lanes // chunk) * chunk
    lane_args = jax.tree.map(
        lambda x: np.concatenate([x, np.repeat(x[-1:], padded - lanes)]), lane_args
    )

    def take(first):
        return jax.tree.map(lambda x: x[first : first + chunk], lane_args)

    return padded, [distributed.shard_lanes(take(i), mesh)[0] for i in range(0, padded, chunk)]


def tree_bytes(tree) -> int:
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
LINALG_LOCK = threading.Lock()


def cached(key: tuple, objects: tuple, build: Callable):
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
