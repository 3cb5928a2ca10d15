"""The units of a run in worker processes (`bench.pool`): the same tables as in threads,
the sweep cache's counts brought back, and threads wherever a worker could not find what
the run sweeps."""

import io
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest

from bench import plugins, pool, suite
from bench.spec import SuiteSpec
from bench.sweep.cache import SweepCache
from optimizers import OPTIMIZERS, OptimizerSpec, sgd
from problems import PROBLEMS

SMALL = SuiteSpec(
    problems=("rosenbrock_2d", "beale"),
    optimizers=("sgd", "adam"),
    seeds=1,
    eval_seeds=2,
    grid={"sgd": (1e-4, 1e-3), "adam": (1e-3, 1e-2)},
    steps={"rosenbrock_2d": 12, "beale": 12},
)


@pytest.mark.slow
def test_units_in_processes_give_the_tables_threads_give_and_count_the_cache(tmp_path, monkeypatch):
    made = []
    unit_pool = pool.unit_pool
    monkeypatch.setattr(pool, "unit_pool", lambda *a: made.append(unit_pool(*a)) or made[-1])
    cache = SweepCache(tmp_path / "cache")
    spread = suite.run_suite(
        SMALL, tmp_path / "p", jobs=2, processes=True, cache=cache, progress=io.StringIO()
    )
    assert isinstance(made[0], ProcessPoolExecutor)
    counted = SweepCache(tmp_path / "counted")
    threaded = suite.run_suite(SMALL, tmp_path / "t", jobs=2, cache=counted, progress=io.StringIO())
    assert isinstance(made[1], ThreadPoolExecutor)
    # the sweeps stored in the workers, counted as a run in threads counts its own
    assert cache.counts() == counted.counts() != (0, 0, 0)
    for name in ("runs", "curves"):  # all but the wall-clock times
        left, right = (t[name].filter(regex="^(?!.*seconds)") for t in (spread, threaded))
        assert left.shape[1] >= 8
        pd.testing.assert_frame_equal(left, right)
    again = SweepCache(tmp_path / "cache")
    suite.run_suite(
        SMALL, tmp_path / "p", jobs=2, processes=True, cache=again, progress=io.StringIO()
    )
    assert again.counts() == (0, 0, 4)  # the four units, read in the workers


def test_a_name_a_fresh_process_would_not_find_keeps_the_units_in_threads(monkeypatch):
    assert pool.workers_resolve(["sgd", "adam"], ["rosenbrock_2d", "cnn_digits"])
    monkeypatch.setitem(OPTIMIZERS, "adam", OptimizerSpec(sgd, (1e-3,)))  # replaced
    assert not pool.workers_resolve(["adam"], ["rosenbrock_2d"])
    monkeypatch.setitem(OPTIMIZERS, "only_here", OptimizerSpec(sgd, (1e-3,)))  # added
    assert not pool.workers_resolve(["only_here"], ["rosenbrock_2d"])
    monkeypatch.delitem(PROBLEMS, "beale")  # removed
    assert not pool.workers_resolve(["sgd"], ["beale"])


def test_a_rule_added_from_a_file_keeps_the_units_in_threads(tmp_path, monkeypatch):
    rule = tmp_path / "my_rule.py"
    rule.write_text(
        "from optimizers import sgd\n\ndef my_rule(learning_rate):\n    return sgd(learning_rate)\n"
    )
    monkeypatch.setattr(plugins, "_optimizers", {})
    name = plugins.add_optimizer(f"{rule}:my_rule")
    assert name in plugins.added_names()
    assert not pool.workers_resolve([name, "sgd"], ["rosenbrock_2d"])


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_job_or_no_processes_asked_for_is_threads(jobs):
    workers = pool.unit_pool(jobs, jobs == 1)
    try:
        assert isinstance(workers, ThreadPoolExecutor)
    finally:
        workers.shutdown()
