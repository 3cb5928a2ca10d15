"""The regression gate does not depend on the CPU it runs on.

XLA:CPU compiles for the widest instruction set the machine has, and where that set
has fused multiply-add instructions (AVX2 and later, ARM) it fuses a multiply and an add
into one rounding instead of two: float results then differ in their last bits between
machines. `--xla_cpu_max_isa` caps the set, so one machine can play an older one.

Here, under SSE4.2 (no FMA) and under a wider set the machine has, in subprocesses:
- every problem's data, initial points and minibatches are the same to the last bit
  (problems/draws.py, problems/data/README.md);
- the quick benchmark of tests/test_regression.py matches the committed baseline
  with the tolerances of test_regression.py: in `make test`, for PORTABLE_SAMPLE, the
  rules whose arithmetic differs most in kind; for every rule with OPTBENCH_PORTABLE=all
  (`make baseline` checks a new baseline so before it is kept).
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from test_regression import assert_matches_the_baseline

from optimizers import OPTIMIZERS
from problems import PROBLEMS, draws, stored

ROOT = Path(__file__).parent.parent
# The quick benchmark under another instruction set costs one program per pair again; in
# `make test` it runs for a sample of rules, one of each kind of arithmetic: plain and
# momentum steps, Adam-like moments, sign steps, factored and trust-ratio rules, a line
# search, a linear solve, SVD, eigh and QR, coupled Newton roots, triangular solves,
# Newton-Schulz iterations, Hessian-vector products, schedule-free averaging,
# distance-adaptive step sizes.
PORTABLE_SAMPLE = (
    "sgd",
    "nesterov",
    "adam",
    "adagrad",
    "rmsprop",
    "lion",
    "adafactor",
    "lamb",
    "lbfgs",
    "newton",
    "shampoo",
    "soap",
    "distributed_shampoo",
    "kron",
    "muon",
    "sophia",
    "schedule_free_adamw",
    "prodigy",
)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def instruction_sets() -> list[str]:
    """SSE4.2, the x86-64 baseline every such CPU has, and AVX2 (with FMA) where present."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    return ["SSE4_2"] + (["AVX2"] if {"avx2", "fma"} <= cpu_flags() else [])


needs_x86 = pytest.mark.skipif(
    not instruction_sets(), reason="--xla_cpu_max_isa caps x86-64 instruction sets only"
)


def run_under(isa: str, *args: str) -> str:
    """stdout of `python args` with XLA:CPU limited to `isa`."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_max_isa={isa}", "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def digests() -> dict[str, str]:
    """SHA-256 of every problem's data, of its initial points for two seeds and of a minibatch."""

    def digest(tree) -> str:
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
        return hashlib.sha256(b"".join(leaf.tobytes() for leaf in leaves)).hexdigest()

    out = {}
    for name, problem in PROBLEMS.items():
        data = problem.data()
        out[f"{name} data"] = digest(data)
        for seed in (0, 1):
            out[f"{name} init {seed}"] = digest(problem.init(jax.random.PRNGKey(seed)))
        if problem.stochastic:
            out[f"{name} batch"] = digest(problem.sample_batch(data, jax.random.PRNGKey(7)))
    return out


def test_normal_draws_are_standard_normal_to_a_few_moments():
    x = draws.normal(jax.random.PRNGKey(0), (200_000,))
    assert x.dtype == jnp.float32
    x = np.asarray(x, np.float64)
    assert np.all(np.abs(x) <= 6.0)
    # Standard errors at n = 2e5: 2.2e-3 for the mean, 3.2e-3 for the variance.
    assert abs(np.mean(x)) < 0.01
    assert abs(np.var(x) - 1.0) < 0.015
    # The Irwin-Hall sum of 12 uniforms has kurtosis 3 - 1.2 / 12 = 2.9 (a normal's is 3).
    assert abs(np.mean(x**4) / np.var(x) ** 2 - 2.9) < 0.05


def test_uniform_draws_fill_the_box_on_an_exact_grid():
    low, high = -5.12, 5.12
    x = np.asarray(draws.uniform(jax.random.PRNGKey(0), (100_000,), low, high))
    assert x.dtype == np.float32 and x.min() >= low and x.max() <= high
    assert x.min() < low + 1e-3 and x.max() > high - 1e-3
    # Every value is an integer multiple of 2^-20, the grid for a box within [-8, 8].
    np.testing.assert_array_equal(x * 2.0**20, np.round(x * 2.0**20))
    with pytest.raises(ValueError, match="low < high"):
        draws.uniform(jax.random.PRNGKey(0), (3,), 1.0, 1.0)


@pytest.mark.parametrize("name", stored.STORED)
def test_stored_matrices_are_the_computed_ones(name):
    function, args = stored.STORED[name]
    saved, computed = stored.matrix(function, *args), function(*args)
    assert saved.dtype == np.float32 and saved.shape == computed.shape
    # Another machine's QR rounds differently in float64 (relative 1e-13 here), which can
    # move a float32 entry by at most one unit in its last place.
    assert np.all(np.abs(saved - computed) <= np.spacing(np.abs(saved)))


@pytest.mark.parametrize("config", [(20, 1e1, 0), (20, 1e6, 0)], ids=str)
def test_quadratic_hessians_are_symmetric_with_their_eigenvalues(config):
    hessian = stored.matrix(stored.quadratic_hessian, *config)
    np.testing.assert_array_equal(hessian, hessian.T)
    # Weyl: rounding A to float32 moves each eigenvalue by at most |dA|_2 <= |dA|_F,
    # below dim * eps32 * max |A_ij| <= dim * eps32 * condition.
    eigenvalues = np.linalg.eigvalsh(hessian.astype(np.float64))
    bound = config[0] * np.finfo(np.float32).eps * config[1]
    np.testing.assert_allclose(eigenvalues[[0, -1]], [1.0, config[1]], rtol=0, atol=bound)


def test_registered_problems_use_the_stored_matrices():
    file = np.load(stored.MATRICES)
    assert sorted(file.files) == sorted(stored.STORED)
    for name in ("quadratic_20d_cond1e1", "quadratic_20d_cond1e3", "quadratic_20d_cond1e6"):
        condition = float(name.rsplit("cond", 1)[1])
        saved = file[f"quadratic_hessian_dim20_cond{condition:.0e}_seed0"]
        np.testing.assert_array_equal(PROBLEMS[name].data()["hessian"], saved)
    for name in ("rastrigin_10d", "ackley_10d", "styblinski_tang_10d"):
        np.testing.assert_array_equal(
            PROBLEMS[name].data()["rotation"], file["rotation_dim10_seed1"]
        )


@pytest.mark.extensive
@needs_x86
@pytest.mark.parametrize("isa", instruction_sets())
def test_problem_data_and_draws_are_identical_under(isa):
    code = "import json, test_portable; print(json.dumps(test_portable.digests()))"
    there = json.loads(run_under(isa, "-c", code))
    here = digests()
    differ = sorted(key for key in here if there.get(key) != here[key])
    assert not differ, f"not bit for bit under {isa}: {differ}"


def test_the_portable_sample_names_registered_rules():
    assert set(PORTABLE_SAMPLE) <= set(OPTIMIZERS)


@pytest.mark.extensive
@needs_x86
@pytest.mark.parametrize("isa", instruction_sets())
def test_quick_benchmark_matches_the_baseline_under(isa, tmp_path):
    chosen = None if os.environ.get("OPTBENCH_PORTABLE") == "all" else PORTABLE_SAMPLE
    arguments = [] if chosen is None else [",".join(chosen)]
    run_under(isa, "-m", "tests.test_regression", str(tmp_path / "runs.csv"), *arguments)
    assert_matches_the_baseline(pd.read_csv(tmp_path / "runs.csv"), chosen)
