"""The sweep cache (bench/sweep/cache.py): a hit gives the outputs a run gives, a change
to the program or its inputs misses, a damaged entry is run again, and `bench run`
reruns nothing (and draws nothing) when nothing changed."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

import bench.cli
from bench.cli import main
from bench.sweep import cache as cache_keys
from bench.sweep.cache import SweepCache
from bench.sweep.runner import run_sweep
from optimizers import OptimizerSpec, sgd

SMALL = dict(seeds=2, steps=40, learning_rates=[1e-3, 1e-2], record_points=12)
LEVELS = {"1e-1": 0.1, "1e-3": 1e-3}


def same_outputs(a, b):
    for field in ("losses", "grad_norms", "grad_evals", "record_steps", "seeds", "trials"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    assert (a.reached is None) == (b.reached is None)
    for kind in a.reached or {}:
        for x, y in zip(a.reached[kind], b.reached[kind], strict=True):
            np.testing.assert_array_equal(x, y)
    assert (a.chunk, a.optimized) == (b.chunk, b.optimized)


@pytest.mark.parametrize("problem", ["rosenbrock_2d", "least_squares_diabetes_batch32"])
def test_a_hit_gives_what_the_run_gave(tmp_path, problem):
    cache = SweepCache(tmp_path)
    ran = run_sweep(problem, "adam", cache=cache, levels=LEVELS, **SMALL)
    found = run_sweep(problem, "adam", cache=cache, levels=LEVELS, **SMALL)
    assert not ran.cached and found.cached
    assert (cache.hits, cache.misses) == (1, 1)
    same_outputs(ran, found)
    # the seconds are the run's that stored them
    assert (found.compile_seconds, found.run_seconds, found.seconds_per_step) == (
        ran.compile_seconds,
        ran.run_seconds,
        ran.seconds_per_step,
    )
    uncached = run_sweep(problem, "adam", levels=LEVELS, **SMALL)
    same_outputs(ran, uncached)


def test_other_inputs_or_settings_miss(tmp_path):
    cache = SweepCache(tmp_path)
    run_sweep("rosenbrock_2d", "momentum", cache=cache, **SMALL)
    changes = [
        dict(SMALL, seeds=[0, 2]),  # a lane's seed
        dict(SMALL, learning_rates=[1e-3, 2e-2]),  # a swept value
        dict(SMALL, steps=41),  # the program
        dict(SMALL, momentum=0.5),  # a fixed hyperparameter, a constant of the program
    ]
    for change in changes:
        assert not run_sweep("rosenbrock_2d", "momentum", cache=cache, **change).cached
    assert cache.hits == 0


# A rule defined outside the project's sources: found by its lowered program only.
DAMPING = 1.0


def damped_sgd(learning_rate):
    return sgd(learning_rate * DAMPING)


def test_a_rule_outside_the_project_is_keyed_by_its_program(tmp_path, monkeypatch):
    cache = SweepCache(tmp_path)
    rule = OptimizerSpec(damped_sgd, learning_rates=(1e-3, 1e-2))
    first = run_sweep("rosenbrock_2d", rule, cache=cache, seeds=2, steps=40)
    assert not list((tmp_path / "quick").rglob("*"))  # no quick key for it
    assert run_sweep("rosenbrock_2d", rule, cache=cache, seeds=2, steps=40).cached
    monkeypatch.setattr(sys.modules[__name__], "DAMPING", 0.5)
    # a new spec: a process keeps the programs it compiled by the identity of theirs
    rule = OptimizerSpec(damped_sgd, learning_rates=(1e-3, 1e-2))
    changed = run_sweep("rosenbrock_2d", rule, cache=cache, seeds=2, steps=40)
    assert not changed.cached
    assert not np.array_equal(changed.losses, first.losses)


def test_a_rules_quick_key_follows_its_own_files_and_their_imports():
    """A rule's sweeps are keyed by the files that can build them: its module, what it
    imports, the runner and the problems, not every other rule's module."""
    from bench import plugins
    from optimizers.adam import adam
    from optimizers.lion import lion

    problem = plugins.problem("rosenbrock_2d")
    root = cache_keys.ROOT

    def files(factory):
        starts = cache_keys._starts((factory, *cache_keys._problem_functions(problem)))
        return {str(path.relative_to(root)) for path in cache_keys.sources(starts)}

    adams, lions = files(adam), files(lion)
    assert {"optimizers/adam.py", "optimizers/base.py", "optimizers/__init__.py"} <= adams
    assert {"bench/sweep/runner.py", "bench/sweep/lane.py", "problems/rosenbrock.py"} <= adams
    assert "problems/data/matrices.npz" in adams
    assert "optimizers/lion.py" not in adams and "optimizers/adam.py" not in lions
    assert not any(name.startswith("bench/report") for name in adams)
    # so an edit of lion's module leaves adam's key as it was
    key = cache_keys.quick_key(problem, adam, (), "")
    assert key == cache_keys.quick_key(problem, adam, (), "")
    assert key != cache_keys.quick_key(problem, lion, (), "")


def test_changed_sources_fall_back_on_the_program_key(tmp_path, monkeypatch):
    cache = SweepCache(tmp_path)
    run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    # as if a file under optimizers/ changed, though not adam's program
    monkeypatch.setattr(cache_keys, "sources_digest", lambda starts: "edited")
    found = run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    assert found.cached and (cache.hits, cache.misses) == (1, 1)


def test_other_compiler_options_miss(tmp_path, monkeypatch):
    """The same lowered program compiled with other options is another program: its
    results may differ in the last bits."""
    from bench.sweep import program

    cache = SweepCache(tmp_path)
    run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    monkeypatch.setattr(cache_keys, "sources_digest", lambda starts: "edited")
    options = dict(program.FAST_COMPILE, xla_cpu_parallel_codegen_split_count=2)
    monkeypatch.setattr(program, "FAST_COMPILE", options)
    assert not run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL).cached
    assert cache.hits == 0


def test_a_damaged_entry_is_run_again_with_one_line(tmp_path, capsys):
    cache = SweepCache(tmp_path)
    ran = run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    (entry,) = (p for p in (tmp_path / "entries").rglob("*") if p.is_file())
    content = bytearray(entry.read_bytes())
    content[-40] ^= 0xFF
    entry.write_bytes(bytes(content))
    again = run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    assert not again.cached
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0]
    same_outputs(ran, again)
    assert run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL).cached  # stored anew


def test_a_truncated_entry_is_run_again(tmp_path, capsys):
    cache = SweepCache(tmp_path)
    run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL)
    (entry,) = (p for p in (tmp_path / "entries").rglob("*") if p.is_file())
    entry.write_bytes(entry.read_bytes()[:100])
    assert not run_sweep("rosenbrock_2d", "adam", cache=cache, **SMALL).cached
    assert "damaged" in capsys.readouterr().err


RUN = ["run", "--problems", "rosenbrock_2d", "least_squares_diabetes_batch32"]
RUN += ["--optimizers", "sgd", "adam", "--seeds", "2", "--steps", "30", "--grid", "1e-3", "1e-2"]
# One job: the units then run in this process, where the test patches the sources' digest
# (worker processes, bench.pool, would import their own).
RUN += ["--jobs", "1"]


@pytest.mark.slow
def test_bench_run_reruns_nothing_when_nothing_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.cli, "CACHES", True)
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    assert main([*RUN, "--out", str(cold)]) == 0
    meta = json.loads((cold / "meta.json").read_text())
    sweeps = meta["sweep_cache"]["stored"]
    assert sweeps >= 4 and meta["sweep_cache"]["hits"] == 0
    assert main([*RUN, "--out", str(warm)]) == 0
    meta = json.loads((warm / "meta.json").read_text())
    # every pair's tables from the cache, no sweep looked up
    assert meta["sweep_cache"] == {"units": 4, "hits": 0, "stored": 0}
    assert meta["compile_seconds"] == 0 and meta["run_seconds"] == 0
    for name in ("runs.csv.gz", "curves.csv.gz", "TABLES.md", "summary.csv"):
        assert (cold / name).read_bytes() == (warm / name).read_bytes(), name
    # After an edit of the sources the pairs are tuned again from their sweeps, each found
    # by its program.
    edited = tmp_path / "edited"
    with monkeypatch.context() as patch:
        patch.setattr(cache_keys, "sources_digest", lambda starts: "edited")
        assert main([*RUN, "--out", str(edited)]) == 0
    meta = json.loads((edited / "meta.json").read_text())
    assert meta["sweep_cache"] == {"units": 0, "hits": sweeps, "stored": 0}
    assert (edited / "runs.csv.gz").read_bytes() == (cold / "runs.csv.gz").read_bytes()

    # Run again into the same folder: the drawing is kept, not drawn again ...
    drawn = warm / "convergence.png"
    stamp = drawn.stat().st_mtime_ns
    assert main([*RUN, "--out", str(warm)]) == 0
    assert drawn.stat().st_mtime_ns == stamp
    # ... unless a file of it changed since (a `bench plot` redrew it), or --no-cache.
    (warm / "TABLES.md").write_text("redrawn")
    assert main([*RUN, "--out", str(warm)]) == 0
    assert (warm / "TABLES.md").read_bytes() == (cold / "TABLES.md").read_bytes()
    assert main([*RUN, "--out", str(warm), "--no-cache"]) == 0
    assert drawn.stat().st_mtime_ns != stamp
    assert "sweep_cache" not in json.loads((warm / "meta.json").read_text())
    # the sweeps run again, their outcomes the same (times apart)
    runs, before = (pd.read_csv(folder / "runs.csv.gz") for folder in (warm, cold))
    timed = [column for column in runs if "seconds" in column]
    pd.testing.assert_frame_equal(runs.drop(columns=timed), before.drop(columns=timed))


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path))
    run_sweep("rosenbrock_2d", "adam", cache=SweepCache(tmp_path / "sweeps"), **SMALL)
    assert main(["cache", "info"]) == 0
    assert f"{tmp_path / 'sweeps'}: 1 sweep," in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 sweep from" in capsys.readouterr().out
    assert SweepCache(tmp_path / "sweeps").info()["entries"] == 0
    assert main(["cache", "info"]) == 0
    assert ": 0 sweeps," in capsys.readouterr().out


def test_every_built_in_problem_and_rule_has_a_quick_key():
    # A problem's data under functools.cache, a loss that is a functools.partial: still
    # the project's own functions (logistic_synthetic_200x10 had no quick key).
    from bench import plugins
    from problems import PROBLEMS

    for name in PROBLEMS:
        assert cache_keys.quick_key(plugins.problem(name), sgd, (), "") is not None, name
    assert cache_keys.quick_key(plugins.problem("rosenbrock_2d"), damped_sgd, (), "") is None
