"""The `Problem` record every test problem fills in."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax

Params = Any
Batch = Any


# Where a Problem's f_star comes from (`Problem.f_star_source`).
F_STAR_SOURCES = ("known", "best_found")


def _no_data() -> None:
    return None


@dataclass(frozen=True)
class Problem:
    """A test problem: pure functions of (params, data, key) plus the facts a benchmark needs.

    Everything a run needs is a function of the problem and a key: `init(key)` draws
    the starting point, `sample_batch(data, key)` draws a minibatch (stochastic
    problems only), and `data()` returns the fixed data set (None for closed-form
    functions). The same key gives the same numbers, bit for bit.

    For "dataset" problems, every leaf of `data()` has the example axis first and
    `loss(params, subset)` accepts any subset of examples (minibatches, folds).
    """

    name: str
    description: str  # one line
    # from {"convex", "nonconvex", "stochastic", "dataset"}; model families add their own
    # ("cnn", "transformer", "autoencoder")
    tags: frozenset[str]
    dim: int  # number of scalar parameters
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch], jax.Array]  # the objective on a batch (the full data set)
    # Known minimum, or a stored float64 reference value; None where none is known: a suite
    # then takes the lowest value any optimizer of the run reached (`f_star_source`).
    f_star: float | None
    target: float  # steps-to-target counts steps until loss - f_star <= target
    steps: int  # default step budget
    data: Callable[[], Batch] = _no_data  # the full data set, built once and cached
    x_star: Params | None = None  # a known minimiser, where there is one
    sample_batch: Callable[[Batch, jax.Array], Batch] | None = None  # None: full batch
    # Extra end-of-run metrics, name -> fn(params) (e.g. held-out test accuracy), or
    # fn(params, test_data) where the problem declares `test_data`.
    metrics: Mapping[str, Callable[..., jax.Array]] = field(default_factory=dict)
    # For layered models: grads -> vector of per-layer gradient norms, input layer first.
    layer_grad_norms: Callable[[Params], jax.Array] | None = None
    # Provenance of f_star: "known" (closed form, a stored reference solve, a published or
    # certified value) or "best_found" (f_star is None: the lowest value a run reached).
    f_star_source: str = "known"
    f_star_note: str = ""  # where a known value comes from, or why a given one was replaced
    # True where `init` ignores its key (CUTEst's start point y0): every seed starts at the
    # same point, and a deterministic problem's seeds then run identical lanes.
    fixed_start: bool = False
    # True where a suite resolves f* from its own run (CUTEst's problems): it checks a known
    # f_star against the lowest value any optimizer of the run reached, and takes that value
    # where none is known (`bench.suite.sweep_problem`). A deterministic problem from a
    # fixed start is always resolved so.
    f_star_from_run: bool = False
    # Model families (problems/cnn.py, transformer.py, autoencoder.py) declare how they are
    # evaluated, so that the runner never touches the whole data set at a record point:
    # `eval_batch(data)` is the fixed batch whose training loss is recorded (None: the whole
    # data set, with its gradient, as before); `test_data()` is the held-out data, passed to
    # the compiled program as an argument, and each metric is then `fn(params, test_data)`.
    eval_batch: Callable[[Batch], Batch] | None = None
    test_data: Callable[[], Batch] | None = None
    # A problem whose lanes differ in their data (BBOB's instances, problems/bbob.py):
    # `lane_data(seed)` is the data of the lane of `seed`, passed to the compiled program
    # per lane (one program runs every instance) and given to `loss` in place of `data()`.
    lane_data: Callable[[int], Batch] | None = None
    # What simple reference models score on a metric, metric -> {model: value}: the bar a
    # trained model must clear (the transformer's unigram and bigram test losses), shown
    # beside the results.
    baselines: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        if self.f_star_source not in F_STAR_SOURCES:
            raise ValueError(
                f"problem {self.name}: f_star_source must be one of {F_STAR_SOURCES}, "
                f"got {self.f_star_source!r}"
            )
        if (self.f_star is None) != (self.f_star_source == "best_found"):
            raise ValueError(
                f"problem {self.name}: f_star is None exactly when f_star_source is "
                f"'best_found', got f_star={self.f_star} with {self.f_star_source!r}"
            )

    @property
    def stochastic(self) -> bool:
        return self.sample_batch is not None
