"""Hand-written gradient optimizers with the names, arguments and defaults of optax.

    from optimizers import adam, apply_updates
    opt = adam(learning_rate=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

`OPTIMIZERS` maps each benchmark name to an `OptimizerSpec`: the factory, the
hyperparameters the benchmark fixes, its learning-rate search grid, non-default
hyperparameters for the parity tests, and its capabilities. Adding an optimizer
is one module and one line here; the tests and the benchmark loop over it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers import schedules, transforms
from optimizers.adam import adam
from optimizers.base import Optimizer, apply_updates
from optimizers.sgd import sgd


@dataclass(frozen=True)
class OptimizerSpec:
    """A registry entry: how to build, test and sweep one optimizer."""

    factory: Callable[..., Optimizer]
    # Log-spaced learning rates the benchmark sweeps by default.
    learning_rates: tuple[float, ...]
    # Hyperparameters (besides learning_rate) the benchmark passes to the factory.
    hparams: dict[str, Any] = field(default_factory=dict)
    # Non-default hyperparameters the parity tests pass to both us and optax.
    test_hparams: dict[str, Any] = field(default_factory=dict)
    # Name of the optax alias with the same meaning, or None for rules optax lacks.
    optax_name: str | None = None
    # True for line-search methods whose update needs the loss value and function.
    needs_value_fn: bool = False
    # True where the rule needs a full-batch (deterministic) gradient.
    deterministic_only: bool = False


def log_grid(low: float, high: float, per_decade: int = 2) -> tuple[float, ...]:
    """Log-spaced learning rates from `low` to `high`, `per_decade` points per factor of 10."""
    decades = np.log10(high) - np.log10(low)
    points = int(round(decades * per_decade)) + 1
    return tuple(float(x) for x in np.logspace(np.log10(low), np.log10(high), points))


LR_GRID = log_grid(1e-4, 1.0)

OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(sgd, LR_GRID, optax_name="sgd"),
    "momentum": OptimizerSpec(sgd, LR_GRID, {"momentum": 0.9}, {"momentum": 0.7}, optax_name="sgd"),
    "nesterov": OptimizerSpec(
        sgd,
        LR_GRID,
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.7, "nesterov": True},
        optax_name="sgd",
    ),
    "adam": OptimizerSpec(
        adam, LR_GRID, test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6}, optax_name="adam"
    ),
}

__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "OptimizerSpec",
    "adam",
    "apply_updates",
    "schedules",
    "sgd",
    "transforms",
]
