"""The quick benchmark against its committed baseline in tests/baseline/.

A few small problems x every registered optimizer, a short float64 run at three
learning rates and two fixed seeds, compared metric by metric with
`bench.results.compare` (the code behind `python -m bench compare`). Any change to an
update rule, a loss, a problem or the runner that moves these numbers fails here.

`make baseline` (python -m tests.test_regression) rewrites the baseline; it is the
only way it changes, and a change to it is reviewed like a change to the code.
"""

import io
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from bench.results.compare import UnusableInput, compare_tables, format_moves
from bench.results.files import FLOAT_FORMAT
from bench.sweep.arguments import skip_reason
from bench.sweep.records import BLOWUP_FACTOR, runs_frame
from bench.sweep.runner import SweepResult, run_sweep
from optimizers import OPTIMIZERS
from problems import PROBLEMS

# Not marked slow, though its sweeps take a minute: it is in `make test` because it is
# what `make mutation` measures (with test_losses.py and test_golden.py).

BASELINE = Path(__file__).parent / "baseline" / "runs.csv"
SEEDS = (0, 1)
# Largest relative difference between two machines' float64 numbers that the quick
# benchmark allows for (see assert_matches_the_baseline): 60x the measured 1.5e-10.
CROSS_MACHINE_ERROR = 1e-8
# Long enough for every moment estimate, bias correction and schedule to matter, short
# enough that compile time (one program per pair, about half a second) dominates.
STEPS = 30
# Small problems with fixed seeds, each with the rules it runs. Every optimizer runs on
# a rotated quadratic (linear gradients, condition 1e3) and on Rosenbrock (curved valley,
# large gradients). Logistic regression (cross-entropy loss, a data set) and a minibatch
# least-squares problem (the runner's stochastic path, its minibatch keys) run with two
# rules only: enough to pin the loss and the runner down, since one more program per
# optimizer would add half the cost of this test for little power on the rules. Rules
# that update matrix parameters only, which the problems above lack, run on an MLP.
QUICK_PROBLEMS = {
    "quadratic_20d_cond1e3": lambda name, spec: True,
    "rosenbrock_2d": lambda name, spec: True,
    "logistic_synthetic_200x10": lambda name, spec: name in ("sgd", "adam"),
    "least_squares_diabetes_batch32": lambda name, spec: name in ("sgd", "adam"),
    "mlp_digits_relu_32": lambda name, spec: spec.matrix_only,
}


# Options that keep a rule's quick-benchmark lanes well-conditioned. Shampoo's inverse
# roots come from an SVD of its gradient statistics, whose float64 rounding differs
# between machines' LAPACK kernels and is amplified by the statistics' condition number
# (up to 1 / matrix_eps): at the default 1e-6 a gradient norm moved by 2e-6 under SSE4.2;
# 1e-2 bounds the amplification 1e4 times lower. The roots are recomputed every step:
# the benchmark's 10-step interval lets the small learning rates' lanes blow up to 1e12
# first, where an SVD's rounding moves the numbers by 1e-2 between instruction sets.
# APOLLO at the grid's lr 0.1 brings the MLP to a loss of 1e-8 in 30 steps, where its
# channel scaling (a ratio of norms of the projected Adam step and gradient, eps 1e-6)
# carries a sum's last bits into every step: under SSE4.2 a gradient norm moved by 1.5e-4;
# eps 1e-2 keeps the lanes away from there (measured: equal to the last bit).
QUICK_OPTIONS = {
    "shampoo": {"matrix_eps": 1e-2, "preconditioning_compute_steps": 1},
    "apollo": {"eps": 1e-2},
}


def quick_learning_rates(grid):
    """Up to three points of an optimizer's own grid: at a quarter, half and three quarters."""
    return sorted({grid[len(grid) // 4], grid[len(grid) // 2], grid[(3 * len(grid)) // 4]})


def quick_pairs(optimizers=None):
    """(problem, optimizer) pairs of the quick benchmark that the capability flags allow,
    of the given optimizers only (default: all)."""
    return [
        (problem, name)
        for problem, runs in QUICK_PROBLEMS.items()
        for name, spec in OPTIMIZERS.items()
        if (optimizers is None or name in optimizers)
        and runs(name, spec)
        and skip_reason(PROBLEMS[problem], spec) is None
    ]


def quick_sweeps(optimizers=None) -> list[SweepResult]:
    """Every sweep of the quick benchmark (of the given optimizers), in float64."""
    return [
        run_sweep(
            problem,
            name,
            quick_learning_rates(OPTIMIZERS[name].learning_rates),
            SEEDS,
            STEPS,
            dtype="float64",
            **QUICK_OPTIONS.get(name, {}),
        )
        for problem, name in quick_pairs(optimizers)
    ]


def runs_table(sweeps: list[SweepResult]) -> pd.DataFrame:
    """runs.csv rows of the sweeps, rounded as the CSV files round them (8 digits)."""
    frame = pd.concat([runs_frame(sweep) for sweep in sweeps], ignore_index=True)
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format=FLOAT_FORMAT)))


def write_baseline(path: Path = BASELINE, optimizers=None) -> None:
    from bench.results.files import write_csv

    jax.config.update("jax_enable_x64", True)
    runs = runs_table(quick_sweeps(optimizers))
    write_csv(runs, path)
    print(f"wrote {len(runs)} rows to {path}")


def assert_matches_the_baseline(fresh: pd.DataFrame, optimizers=None) -> None:
    """Fails naming every metric of `fresh` that moved from the committed baseline (of
    the given optimizers' rows only, where `fresh` holds only theirs).

    The tolerances are bench.results.compare's defaults: 1e-6 relative (1e-12 absolute) for the
    metrics, exact for steps-to-target and the divergence flag. Error model: float64
    arithmetic rounds at 1.1e-16 per operation, and machines differ only in how (FMA
    or a multiply and an add, the order of a sum's terms), since every input is the
    same to the last bit (tests/test_portable.py). Over 30 steps of 20-dimensional
    products on a problem of condition 1e3 that is at most about
    30 * 20 * 1e3 * 1.1e-16 = 7e-11 relative; measured between AVX-512, AVX2 and
    SSE4.2, the largest difference was 1.5e-10 (one lbfgs gradient norm), the rest
    below the CSV's 8 digits. A changed rule moves the numbers by 1e-3 and more.
    The exact columns are safe because no lane of the quick benchmark comes within
    CROSS_MACHINE_ERROR of a threshold (test_no_lane_is_near_a_threshold).
    """
    baseline = pd.read_csv(BASELINE)
    if optimizers is not None:
        baseline = baseline[baseline["optimizer"].isin(optimizers)].reset_index(drop=True)
    try:
        moves = compare_tables("runs", baseline, fresh)
    except UnusableInput as error:
        pytest.fail(f"{error}\nif the change of coverage is intended, run make baseline")
    assert not moves, "the quick benchmark moved:\n" + format_moves(moves)


@pytest.fixture(scope="module")
def sweeps():
    return quick_sweeps()


def test_every_registered_optimizer_is_in_the_baseline():
    if not BASELINE.is_file():
        pytest.fail(f"{BASELINE} is missing: run make baseline")
    recorded = set(pd.read_csv(BASELINE)["optimizer"])
    missing = sorted(set(OPTIMIZERS) - recorded)
    assert not missing, f"optimizers missing from {BASELINE}: {missing}; run make baseline"
    unknown = sorted(recorded - set(OPTIMIZERS))
    assert not unknown, f"{BASELINE} has unregistered optimizers {unknown}; run make baseline"


def test_quick_benchmark_matches_the_baseline(sweeps):
    assert_matches_the_baseline(runs_table(sweeps))


def test_no_lane_is_near_a_threshold(sweeps):
    """A count compared exactly must not hinge on the last bits of a loss.

    steps-to-target flips if some step's suboptimality lies within rounding of the
    target; the divergence flag if the final loss lies within rounding of 10x the
    initial one. Every lane must clear both by CROSS_MACHINE_ERROR times its loss.
    (A loss that overflows to inf or nan does so on every machine.)
    """
    near = []
    for sweep in sweeps:
        losses = sweep.losses
        margin = CROSS_MACHINE_ERROR * np.abs(losses)
        to_target = np.abs(losses - sweep.f_star - sweep.target) <= margin
        final, initial = losses[:, -1], losses[:, 0]
        to_divergence = np.abs(final - BLOWUP_FACTOR * initial) <= margin[:, -1]
        to_target &= np.isfinite(losses)
        to_divergence &= np.isfinite(final)
        for lane in np.nonzero(np.any(to_target, axis=1) | to_divergence)[0]:
            near.append(f"{sweep.problem}/{sweep.optimizer} lane {lane}")
    assert not near, f"lanes within rounding of a threshold: {near}"


if __name__ == "__main__":
    # python -m tests.test_regression [PATH [OPTIMIZER,OPTIMIZER,...]]
    arguments = sys.argv[1:]
    path = Path(arguments[0]) if arguments else BASELINE
    chosen = arguments[1].split(",") if len(arguments) > 1 else None
    sys.exit(write_baseline(path, chosen))
