"""Golden float64 trajectories: a numerical regression check for every optimizer and schedule.

tests/golden/optimizers/<name>.txt holds the parameters after each of STEPS updates of
one registered optimizer on a fixed problem; tests/golden/schedules.txt holds every
schedule of tests/test_schedules.py at fixed steps. The tests recompute them and
compare. The files change only by regeneration:

    make golden          # runs: python tests/test_golden.py

which rewrites them deterministically (same code, same numbers, same text).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from parity_settings import settings  # noqa: E402
from test_parity_contrib import CASES as CONTRIB_CASES  # noqa: E402
from test_schedules import CASES  # noqa: E402

from optimizers import OPTIMIZERS, apply_updates, schedules  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
STEPS = 25
LEARNING_RATE = 0.05
SCHEDULE_STEPS = (0, 1, 2, 3, 5, 10, 30, 50, 100, 300, 500, 1000, 2000, 3000, 5000, 7000, 9999)

# The goldens are float64 and recomputed with the same code: on the machine that wrote
# them the numbers are bit for bit equal. Another CPU, XLA version or fusion may round
# a few operations per step differently (1.1e-16 each); 1e-10 relative over 25 steps
# absorbs that and still catches any change to a rule's arithmetic.
RTOL = 1e-10
# Rules that do some linear algebra in float32 whatever the params' dtype, as their
# references do: float32 LAPACK kernels (OpenBLAS picks them by CPU model) and float32
# XLA code (fused multiply-adds or not) differ between CPUs by float32 rounding, 6e-8
# relative per operation, which 25 steps carry into the params (measured 4e-7 for
# galore between two x86-64 machines). 1e-5 still catches a changed rule (1e-3 and more).
FLOAT32_LINEAR_ALGEBRA = {
    "galore": "SVD of the gradient in float32, as optax.contrib",
    "soap": "QR of the power iteration in float32, as pytorch_optimizer",
    "kron": "triangular solves in float32 (precondition_dtype), as pytorch_optimizer",
    # measured 4.4e-6 relative under SSE4.2 against AVX-512
    "apollo": "Gaussian projection drawn in float32 (its inverse erf), as apollo-torch",
}
RTOL_FLOAT32_LINEAR_ALGEBRA = 1e-5
# The rounding is relative to the params' scale (about 1), not to each entry: an entry
# near zero moves by float32 rounding of its neighbours (kron under SSE4.2: 4.6e-8).
ATOL_FLOAT32_LINEAR_ALGEBRA = 1e-6


def initial_params():
    """Fixed numbers, not a PRNG draw, so the start does not depend on jax's RNG."""
    return {
        "w": jnp.array([[0.5, -1.2], [0.3, 0.8]], jnp.float64),
        "b": jnp.array([-0.7, 1.1], jnp.float64),
    }


def loss(params):
    """Smooth, strongly convex, not quadratic, leaves coupled, optimum away from zero.

    A few operations only: the test compiles it once per optimizer.
    """
    w, b = params["w"] - 0.5, params["b"] + 0.3
    polynomial = jnp.sum(w**2 + 0.1 * w**4) + jnp.sum(b**2 + 0.1 * b**4) + 0.1 * jnp.sum(w @ b)
    # The offset puts the minimum (about 12) above the lower bound f_min = 11 that
    # polyak_sgd's test hyperparameters give, so its step sizes stay positive.
    return polynomial + 12.0


def golden_hparams(name):
    """The rule's test hyperparameters (tests/parity_settings.py), or those of its
    optax.contrib parity case (tests/test_parity_contrib.py)."""
    case = CONTRIB_CASES.get(name)
    return settings(name).hparams if case is None else case.hparams


@functools.cache
def jitted_step(name):
    """The optimizer (learning_rate=LEARNING_RATE and its test hyperparameters) and one
    jitted step `(params, state) -> (params, state)` on `loss`.

    Cached: tests/test_research_use.py reuses the compiled step, so each optimizer's
    step is compiled once for both files.
    """
    spec = OPTIMIZERS[name]
    opt = spec.factory(**{"learning_rate": LEARNING_RATE, **golden_hparams(name)})

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, **spec.update_extras(value, grads, loss))
        return apply_updates(params, updates), state

    return opt, step


def optimizer_trajectory(name) -> np.ndarray:
    """Rows: step 1..STEPS; columns: every parameter entry (leaves in tree order)."""
    opt, step = jitted_step(name)
    params = initial_params()
    state = opt.init(params)
    rows = []
    for _ in range(STEPS):
        params, state = step(params, state)
        rows.append(np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(params)]))
    return np.array(rows)


def schedule_values() -> dict[str, np.ndarray]:
    """Each schedule case at SCHEDULE_STEPS, all evaluated by one jitted program.

    The counts are float64: an int32 count divided by a step number is float32 in
    jax (and optax), whose last bit may depend on fusion; float64 counts make every
    value a float64 computation, reproducible to the 1e-12 checked below.
    """
    built = {f"{name}-{i}": getattr(schedules, name)(**kw) for i, (name, kw) in enumerate(CASES)}
    at_steps = jax.jit(
        jax.vmap(lambda t: {key: jnp.asarray(schedule(t)) for key, schedule in built.items()})
    )
    values = at_steps(jnp.array(SCHEDULE_STEPS, jnp.float64))
    return {key: np.asarray(v) for key, v in values.items()}


def optimizer_file(name) -> Path:
    return GOLDEN / "optimizers" / f"{name}.txt"


def format_rows(header: str, rows) -> str:
    """One line per row, each number with 17 significant digits (exact for float64)."""
    lines = [f"# {header}"]
    lines += [" ".join(f"{x:.17g}" for x in row) for row in rows]
    return "\n".join(lines) + "\n"


def parse_rows(path: Path) -> np.ndarray:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return np.array([[float(x) for x in line.split()] for line in lines], np.float64)


def write_goldens() -> None:
    (GOLDEN / "optimizers").mkdir(parents=True, exist_ok=True)
    for stale in (GOLDEN / "optimizers").glob("*.txt"):
        if stale.stem not in OPTIMIZERS:
            stale.unlink()
    for name in OPTIMIZERS:
        header = (
            f"{name}: learning_rate={LEARNING_RATE}, {golden_hparams(name)}; float64 params after "
            f"each of {STEPS} steps on tests/test_golden.py:loss (w row-major, then b)"
        )
        rows = optimizer_trajectory(name)
        if not np.all(np.isfinite(rows)):
            raise ValueError(f"{name}: golden trajectory is not finite; fix its test settings")
        optimizer_file(name).write_text(format_rows(header, rows))
    lines = [
        f"# schedule case (tests/test_schedules.py CASES index) at float64 steps {SCHEDULE_STEPS}"
    ]
    for key, values in schedule_values().items():
        lines.append(key + " " + " ".join(f"{x:.17g}" for x in values))
    (GOLDEN / "schedules.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_its_golden_trajectory(name):
    path = optimizer_file(name)
    assert path.exists(), f"no golden trajectory for {name!r}: run `make golden`"
    golden = parse_rows(path)
    current = optimizer_trajectory(name)
    assert golden.shape == current.shape, f"{path} has shape {golden.shape}: run `make golden`"
    rtol, atol = RTOL, 1e-300
    if name in FLOAT32_LINEAR_ALGEBRA:
        rtol, atol = RTOL_FLOAT32_LINEAR_ALGEBRA, ATOL_FLOAT32_LINEAR_ALGEBRA
    np.testing.assert_allclose(current, golden, rtol=rtol, atol=atol)


def test_no_golden_for_an_unregistered_optimizer():
    orphans = {p.stem for p in (GOLDEN / "optimizers").glob("*.txt")} - set(OPTIMIZERS)
    assert not orphans, f"goldens for unregistered optimizers {orphans}: run `make golden`"


def test_schedules_match_their_goldens():
    path = GOLDEN / "schedules.txt"
    assert path.exists(), "no golden schedule values: run `make golden`"
    golden = {
        line.split()[0]: np.array([float(x) for x in line.split()[1:]])
        for line in path.read_text().splitlines()
        if not line.startswith("#")
    }
    current = schedule_values()
    assert set(golden) == set(current), "schedule cases changed: run `make golden`"
    for key, values in current.items():
        # Schedules are a few float64 operations: 1e-12 relative as in test_schedules.
        np.testing.assert_allclose(values, golden[key], rtol=1e-12, atol=1e-15, err_msg=key)


if __name__ == "__main__":
    write_goldens()
