"""The pool a run's units of work go through: worker processes where they pay, else threads.

A sweep spends much of its compile in Python: tracing the lane program, batching it over
the lanes and lowering it (about 0.1-0.4 s a pair, more than XLA takes to compile a small
problem's program at level 0). Python holds its GIL meanwhile, so two pairs in threads
of one process trace one at a time, and beside them a program running on XLA's threads
slows both. Measured on the 2-core CPU over the 94 pairs of rosenbrock_2d (`bench run
--problems rosenbrock_2d --no-cache`): two threads sweep them 1.2x as fast as one, two
processes 1.8x.

Workers are started by spawn (JAX is never forked once it has started) and set up as the
run's own process is: the JAX settings of `SETTINGS` (float64, the persistent
compilation cache) and the environment they inherit. A worker imports the registries
afresh, so processes are used only where every name the run sweeps resolves there to what
it resolves to here (`workers_resolve`), on a CPU (each process would claim its own share
of an accelerator's memory), in a single-process job; the pool is threads otherwise.
"""

import multiprocessing
import signal
from collections.abc import Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import jax

from bench import plugins
from optimizers import OPTIMIZERS
from problems import MODELS, PROBLEMS

# The JAX settings a worker takes from the run's process.
SETTINGS = (
    "jax_enable_x64",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
)
# The built-in registries as imported, which a spawned worker imports alike: a name whose
# entry is still this one resolves to the same rule or problem in a worker.
_IMPORTED = {("optimizer", name): entry for name, entry in OPTIMIZERS.items()}
_IMPORTED |= {("problem", name): entry for name, entry in (PROBLEMS | MODELS).items()}


def workers_resolve(optimizers: Iterable[str], problems: Iterable[str]) -> bool:
    """Whether a spawned worker finds each of these names as this process does: a built-in
    entry not replaced since import, an optional source's problem or an installed entry
    point, never one added at run time (`--optimizer PATH.py:FACTORY`, `--problem`)."""
    added = plugins.added_names()
    for kind, names, registry in (
        ("optimizer", optimizers, OPTIMIZERS),
        ("problem", problems, PROBLEMS | MODELS),
    ):
        for name in names:
            if name in added:
                return False
            if name in registry and _IMPORTED.get((kind, name)) is not registry[name]:
                return False
            if name not in registry and (kind, name) in _IMPORTED:
                return False  # a built-in entry removed since import
    return True


def _start(settings: dict) -> None:
    """A worker's set-up: the run's JAX settings; Ctrl-C is the run's process's to handle
    (it ends the workers, `stop`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name, value in settings.items():
        jax.config.update(name, value)


def unit_pool(jobs: int, processes: bool) -> Executor:
    """`jobs` workers: processes where `processes` (the caller has checked
    `workers_resolve`) and the run is one process on a CPU, else threads."""
    if processes and jobs > 1 and jax.process_count() == 1 and jax.default_backend() == "cpu":
        settings = {name: getattr(jax.config, name) for name in SETTINGS}
        return ProcessPoolExecutor(
            jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings,),
        )
    return ThreadPoolExecutor(jobs)


def stop(workers: Executor, at_once: bool) -> None:
    """Shuts the pool down once its running units end, or, `at_once` (the run was
    interrupted or failed), a process pool's workers are ended now: a unit can run for
    minutes, and Python before 3.14 has no public call for it."""
    if at_once and isinstance(workers, ProcessPoolExecutor):
        for worker in list((getattr(workers, "_processes", None) or {}).values()):
            worker.terminate()
    workers.shutdown(wait=True, cancel_futures=True)
