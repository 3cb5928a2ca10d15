"""Shared fixtures. float64 is enabled for the whole session; float32 tests ask for it.

Under pytest-xdist (`make test`: -n 2) the longest tests start first and the workers take
tests two at a time, so that they finish together: see pytest_collection_modifyitems.

OpenBLAS's kernel is pinned to Nehalem's (SSE4.2) before numpy loads it: the rules built
on an SVD, eigendecomposition or QR (galore, shampoo, soap) take them from OpenBLAS, whose
kernels round differently on different CPUs, and galore's float32 SVD of a gradient with
a null space moves the quick benchmark by up to 25% between them.
"""

import itertools
import os

os.environ.setdefault("OPENBLAS_CORETYPE", "Nehalem")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

# The longest tests, longest first: each takes a minute or more on one core (a quick
# benchmark, or a subprocess that compiles every rule under another instruction set),
# where the suite's other tests take seconds. Started last, one of them would leave a
# worker running alone at the end. The two tests of test_regression.py share its
# module-scoped sweeps: first in the order, they go to the same worker together.
LONGEST_FIRST = (
    "tests/test_regression.py::test_quick_benchmark_matches_the_baseline",
    "tests/test_regression.py::test_no_lane_is_near_a_threshold",
    "tests/test_fused.py::test_fused_step_takes_the_plain_steps_bit_for_bit_without_fma",
    "tests/test_portable.py::test_quick_benchmark_matches_the_baseline_under",
    "tests/test_portable.py::test_problem_data_and_draws_are_identical_under",
)


def _rank(item):
    for rank, prefix in enumerate(LONGEST_FIRST):
        if item.nodeid == prefix or item.nodeid.startswith(prefix + "["):
            return rank
    return len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the rest keep pytest's order


def pytest_configure(config):
    # xdist's load scheduling hands each worker a quarter of the suite at first; two
    # tests at a time instead let the worker that is free take the next one.
    if hasattr(config.option, "maxschedchunk") and config.option.maxschedchunk is None:
        config.option.maxschedchunk = 2


@pytest.fixture
def getkey():
    """A function returning a fresh, deterministic PRNG key on each call."""
    counter = itertools.count()
    return lambda: jax.random.PRNGKey(next(counter))


@pytest.fixture(autouse=True)
def _no_caches(monkeypatch):
    """`bench run` in a test runs every sweep and draws every figure: a test that patches
    the code it runs would otherwise find the sweeps and drawings of the unpatched code
    (the sweep cache's own tests turn it on, tests/test_sweep_cache.py)."""
    import bench.cli

    monkeypatch.setattr(bench.cli, "CACHES", False)
