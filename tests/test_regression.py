"""The quick benchmark against its committed baseline in tests/baseline/.

A few small problems x every registered optimizer, a short float64 run at three
learning rates and two fixed seeds, compared metric by metric with
`bench.compare` (the code behind `python -m bench compare`). Any change to an
update rule, a loss, a problem or the runner that moves these numbers fails here.

`make baseline` (python -m tests.test_regression) rewrites the baseline; it is the
only way it changes, and a change to it is reviewed like a change to the code.
"""

import sys
from pathlib import Path

import jax
import pandas as pd
import pytest

from bench.compare import UnusableInput, compare_tables, format_moves
from bench.records import runs_frame
from bench.runner import run_sweep
from optimizers import OPTIMIZERS
from problems import PROBLEMS

BASELINE = Path(__file__).parent / "baseline" / "runs.csv"
SEEDS = (0, 1)
# Long enough for every moment estimate, bias correction and schedule to matter, short
# enough that compile time (one program per pair, about half a second) dominates.
STEPS = 30
# Small problems with fixed seeds. Every optimizer runs on a rotated quadratic
# (linear gradients, condition 1e3) and on Rosenbrock (curved valley, large
# gradients). Logistic regression (cross-entropy loss, a data set) and a minibatch
# least-squares problem (the runner's stochastic path, its minibatch keys) run with
# two rules only: enough to pin the loss and the runner down, since one more program
# per optimizer would add half the cost of this test for little power on the rules.
ALL = None
QUICK_PROBLEMS = {
    "quadratic_20d_cond1e3": ALL,
    "rosenbrock_2d": ALL,
    "logistic_synthetic_200x10": ("sgd", "adam"),
    "least_squares_diabetes_batch32": ("sgd", "adam"),
}


def quick_learning_rates(grid):
    """Up to three points of an optimizer's own grid: at a quarter, half and three quarters."""
    return sorted({grid[len(grid) // 4], grid[len(grid) // 2], grid[(3 * len(grid)) // 4]})


def quick_pairs():
    """(problem, optimizer) pairs of the quick benchmark that the capability flags allow."""
    return [
        (problem, name)
        for problem, names in QUICK_PROBLEMS.items()
        for name, spec in OPTIMIZERS.items()
        if (names is ALL or name in names)
        and not (spec.deterministic_only and PROBLEMS[problem].stochastic)
    ]


def quick_benchmark() -> pd.DataFrame:
    """runs.csv rows of the quick benchmark, in float64."""
    frames = []
    for problem, name in quick_pairs():
        learning_rates = quick_learning_rates(OPTIMIZERS[name].learning_rates)
        result = run_sweep(problem, name, learning_rates, SEEDS, STEPS, dtype="float64")
        frames.append(runs_frame(result))
    return pd.concat(frames, ignore_index=True)


def write_baseline(path: Path = BASELINE) -> None:
    from bench.io import write_csv

    jax.config.update("jax_enable_x64", True)
    runs = quick_benchmark()
    write_csv(runs, path)
    print(f"wrote {len(runs)} rows to {path}")


@pytest.fixture(scope="module")
def baseline():
    if not BASELINE.is_file():
        pytest.fail(f"{BASELINE} is missing: run make baseline")
    return pd.read_csv(BASELINE)


def test_every_registered_optimizer_is_in_the_baseline(baseline):
    missing = sorted(set(OPTIMIZERS) - set(baseline["optimizer"]))
    assert not missing, f"optimizers missing from {BASELINE}: {missing}; run make baseline"
    unknown = sorted(set(baseline["optimizer"]) - set(OPTIMIZERS))
    assert not unknown, f"{BASELINE} has unregistered optimizers {unknown}; run make baseline"


def test_quick_benchmark_matches_the_baseline(baseline, tmp_path):
    # Rounding the fresh numbers as the baseline file was rounded (10 significant
    # digits) keeps the comparison about the numbers, not about the CSV format.
    fresh = quick_benchmark()
    fresh.to_csv(tmp_path / "runs.csv", index=False, float_format="%.10g")
    fresh = pd.read_csv(tmp_path / "runs.csv")
    try:
        # The default tolerances of bench.compare (1e-6 relative, steps and flags
        # exact): float64 on the same kind of machine reproduces to the last bits.
        moves = compare_tables("runs.csv", baseline, fresh)
    except UnusableInput as error:
        pytest.fail(f"{error}\nif the change of coverage is intended, run make baseline")
    assert not moves, "the quick benchmark moved:\n" + format_moves(moves)


if __name__ == "__main__":
    sys.exit(write_baseline(*(Path(arg) for arg in sys.argv[1:])))
