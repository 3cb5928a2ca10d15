"""How a sweep's program is compiled, sized and kept: the compile options, the memory
budget and the chunks of lanes that fit it, and the programs kept for a later sweep of the
same shapes.
"""

import collections
import os
import threading
from collections.abc import Callable

import jax
import numpy as np

from bench.sweep import distributed

# Compiling is a large share of a benchmark of many short sweeps (docs/runner.md, "Compile
# level"), so by default a sweep is compiled for a fast compile: XLA:CPU's older loop
# emitters instead of its MLIR fusion emitters, each program as one LLVM module (with pairs
# compiled in parallel already, splitting a small program for parallel code generation
# costs more than it saves), and LLVM at optimisation level 0 or 1, chosen per program
# (`fast_level`). Measured side by side on the 2-core CPU over make bench's pairs, level 0
# compiles in 30-60% of level 1's time (0.2-0.7 s a pair against 0.4-2.5 s) and runs 2-3x
# slower; level 1 runs as fast as XLA's defaults, which take 1-5 s more to compile.
# `optimize=True` keeps XLA's defaults.
FAST_COMPILE = {
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
# A program expected to run for less than this at level 0 (one call: every lane, every
# step) is compiled at level 0, where running it 2-3x slower costs less than the 0.2-1.8 s
# that level 1's compile adds.
LEVEL0_BELOW_SECONDS = 0.15
# What a level-0 program sustains on that CPU, for the expected run time: floating-point
# operations and bytes accessed per second, as XLA's cost analysis of the lowered
# (unoptimised) program counts them. Measured there with adam's tuning sweeps (45 lanes):
# the MLPs and the softmax regression run at 4-9 GFLOP/s. Element-wise exp and log over a
# data set and random draws are counted as a few operations each and run slower than
# estimated (logistic_synthetic_200x10 and noisy_quadratic_100d 6-8x), which puts the
# first at level 0 (0.2 s more a run, 0.3 s less a compile) and keeps the second at 1.
# The closed-form test functions, the quadratics, the small least-squares and
# breast-cancer problems (minibatch or not) fall below the threshold, the softmax
# regression, the MLPs, the noisy quadratic and the model families above it.
LEVEL0_FLOPS = 4e9
LEVEL0_BYTES = 4e10
# The share of a device's memory one sweep's program may take (a CPU's physical memory,
# an accelerator's own); lanes that need more run in chunks (`run_sweep`'s `chunk`).
MEMORY_SHARE = 0.5


def compiler_options(level: int | None) -> dict:
    """The compiler options of a sweep's program: XLA's defaults (None), or the fast
    compile at LLVM optimisation level `level` (0 or 1)."""
    if level is None:
        return {}
    return {"xla_backend_optimization_level": level, **FAST_COMPILE}


def expected_seconds(lowered, steps: int) -> float:
    """The time one call of a lowered sweep program is expected to take at optimisation
    level 0: XLA's cost analysis of the program (floating-point operations and bytes
    accessed, which count the body of the step loop once: one step of every lane) at
    LEVEL0_FLOPS and LEVEL0_BYTES, times the steps. 0 where the backend gives no cost
    analysis."""
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
    return per_step * (steps + 1)


def fast_level(lowered, steps: int) -> int:
    """The LLVM optimisation level of a program's fast compile: 0 where one call is
    expected to run for less than LEVEL0_BELOW_SECONDS, else 1. A function of the program
    alone, so that the same sweep is compiled alike (and computes the same last bits)
    on every run."""
    return 0 if expected_seconds(lowered, steps) < LEVEL0_BELOW_SECONDS else 1


def split_lanes(lane_args, lanes: int, chunk: int, mesh) -> tuple[int, list]:
    """The lanes padded to a multiple of `chunk` (by repeating the last), cut into chunks,
    each sharded over the mesh: (padded lane count, chunks)."""
    padded = -(-lanes // chunk) * chunk
    lane_args = jax.tree.map(
        lambda x: np.concatenate([x, np.repeat(x[-1:], padded - lanes, axis=0)]), lane_args
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
