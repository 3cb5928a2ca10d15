"""The registry entry of an optimizer, and the collection of entries from the family modules.

A family module registers its rules by declaring, beside its factories,

    REGISTRY = {"name": OptimizerSpec(factory, learning_rates, ...), ...}
    __all__ = ["factory", ...]

and `collect()` gathers every module's `REGISTRY` and exports its `__all__` from the
package (`from optimizers import factory`): adding an optimizer is one new file, and
optimizers/__init__.py holds no entry of its own. The search space, the optax alias
of the same meaning and the capabilities are data on the entry: `space()` gives the
range (`Range` or `Choice`) of the learning rate and of every traceable float
hyperparameter worth tuning, `defaults()` the learning rate of an untuned run. The
settings the tests build each rule with (non-default hyperparameters, option variants)
live in tests/parity_settings.py.
"""

import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from optimizers.base import Optimizer

SCALES = ("log", "linear", "one_minus_log")


@dataclass(frozen=True)
class Range:
    """A hyperparameter's continuous range [low, high].

    scale "log": log-uniform (low > 0); "linear": uniform; "one_minus_log": for decay
    rates near 1, 1 - x is log-uniform on [1 - high, 1 - low] (high < 1). `value(u)`
    maps u in [0, 1] onto the range, monotone, u = 0 to low and u = 1 to high.
    """

    low: float
    high: float
    scale: str = "log"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low={self.low!r}, high={self.high!r}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"low must be > 0 on a log scale, got {self.low!r}")
        if self.scale == "one_minus_log" and self.high >= 1:
            raise ValueError(f"high must be < 1 on a one_minus_log scale, got {self.high!r}")

    def value(self, u: float) -> float:
        """The point at fraction u in [0, 1] of the range, on its scale."""
        if self.scale == "linear":
            return self.low + u * (self.high - self.low)
        if self.scale == "log":
            return math.exp(math.log(self.low) + u * math.log(self.high / self.low))
        return 1 - Range(1 - self.high, 1 - self.low).value(1 - u)

    def contains(self, x: float) -> bool:
        """Whether x lies in [low, high]."""
        return self.low <= x <= self.high


@dataclass(frozen=True)
class Choice:
    """A hyperparameter's finite set of numeric values; `value(u)` picks the
    fraction-u one: values[min(int(u * n), n - 1)] of n values."""

    values: tuple[float, ...]

    def __post_init__(self):
        if not self.values:
            raise ValueError("values must not be empty")

    def value(self, u: float) -> float:
        """The value at fraction u in [0, 1] of the list."""
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def contains(self, x: float) -> bool:
        """Whether x is one of the values."""
        return x in self.values


# The ranges many rules share: a first-moment decay or momentum (1 - b1 in 1e-3 .. 0.5),
# a second-moment decay (1 - b2 in 1e-4 .. 0.1), a denominator's epsilon, and a weight
# decay, continuous where the rule decays by default, else 0 (off) or one per decade.
MOMENTUM = Range(0.5, 0.999, "one_minus_log")
SECOND_MOMENT = Range(0.9, 0.9999, "one_minus_log")
EPS = Range(1e-10, 1e-3, "log")
WEIGHT_DECAY = Range(1e-5, 1e-1, "log")
WEIGHT_DECAY_OR_OFF = Choice((0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1))
ADAM_SPACE = {"b1": MOMENTUM, "b2": SECOND_MOMENT, "eps": EPS}


# The cost model (docs/method.md, "Cost model"), declared once: the cost of a step in
# loss-and-gradient evaluations. Each evaluation of f and its gradient counts once (one a
# rule already made is reused, never counted twice); a Hessian-vector product counts as
# two (a forward and a backward pass through the gradient); a dense Hessian of d
# parameters as d Hessian-vector products.
GRADIENT = 1.0
HESSIAN_VECTOR_PRODUCT = 2.0


def dense_hessian(dim: int) -> float:
    """The cost of a dense Hessian of `dim` parameters: `dim` Hessian-vector products."""
    return dim * HESSIAN_VECTOR_PRODUCT


@dataclass(frozen=True)
class OptimizerSpec:
    """A registry entry: how to build and sweep one optimizer, its optax counterpart
    and what it can run on."""

    factory: Callable[..., Optimizer]
    # Log-spaced learning rates the benchmark sweeps by default.
    learning_rates: tuple[float, ...]
    # Hyperparameters (besides learning_rate) the benchmark passes to the factory.
    hparams: dict[str, Any] = field(default_factory=dict)
    # Name of the optax alias with the same meaning, or None for rules optax lacks: the
    # reference of the parity tests and of `make perf`.
    optax_name: str | None = None
    # The implementation the rule is checked against per step where it is no optax alias:
    # package, version and class or function, e.g. "pytorch-optimizer 4.1.0 LaProp", or in
    # words where no package has it. None for an optax alias (its reference is optax_name)
    # and for plug-ins.
    reference: str | None = None
    # True for line-search methods whose update needs the loss value and function.
    needs_value_fn: bool = False
    # True where the rule needs a full-batch (deterministic) gradient.
    deterministic_only: bool = False
    # Largest parameter count the rule is meant for (dense second-order methods), or None.
    max_dim: int | None = None
    # True where the update takes the loss of the batch it trains on (`value`, and the
    # loss function for extra gradients or Hessian-vector products); unlike
    # needs_value_fn, the rule is meant for minibatches and runs on stochastic problems.
    needs_loss: bool = False
    # Loss-and-gradient evaluations per update under the cost model (GRADIENT,
    # HESSIAN_VECTOR_PRODUCT, dense_hessian below), the one the update is given included:
    # a number (2 for SAM's ascent step), or, where the count varies, a function
    # `(state after the update, d) -> count` (lbfgs reads its line search's from its state).
    gradient_evaluations: float | Callable[[Any, int], Any] = GRADIENT
    # Where the state after an update holds f and its gradient at the new iterate (a line
    # search's accepted point): `stored_value_and_grad(state) -> (value, grads)`, which the
    # benchmark hands to the next update instead of evaluating them again (optax's
    # `value_and_grad_from_state`); None: the benchmark evaluates them at every step.
    stored_value_and_grad: Callable[[Any], tuple[Any, Any]] | None = None
    # True where the rule's own update applies to matrix leaves only (rank >= 2); the
    # factory's docstring says what the other leaves get. Skipped on problems without one.
    matrix_only: bool = False
    # The point at which the loss is evaluated, `eval_params(state, params)`, where it is
    # not the iterate (schedule-free rules); None: the iterate itself.
    eval_params: Callable[[Any, Any], Any] | None = None
    # The ranges of the hyperparameters worth tuning besides the learning rate: float
    # arguments of the factory that the rule takes as traced scalars (one lane per value
    # in the benchmark's sweep). A swept value overrides the one hparams fixes. Integer,
    # boolean and structural options cannot be traced and are left out. A
    # "learning_rate" entry replaces the range of the grid (see `space`).
    search_space: dict[str, Range | Choice] = field(default_factory=dict)
    # The learning rate of an untuned run where the factory has no default of its own.
    default_learning_rate: float | None = None

    def space(self) -> dict[str, Range | Choice]:
        """Every tunable hyperparameter's range: the learning rate's (log-uniform over the
        grid's span unless search_space gives its own) and search_space's."""
        grid = Range(min(self.learning_rates), max(self.learning_rates), "log")
        return {"learning_rate": grid} | self.search_space

    def defaults(self) -> dict[str, float]:
        """The hyperparameters of an untuned run: the factory's own default learning
        rate where it is a number, else default_learning_rate."""
        default = inspect.signature(self.factory).parameters["learning_rate"].default
        if not isinstance(default, int | float) or isinstance(default, bool):
            default = self.default_learning_rate
        if default is None:
            name = getattr(self.factory, "__name__", repr(self.factory))
            raise ValueError(f"{name} has no default learning rate: set default_learning_rate")
        return {"learning_rate": float(default)}

    def evaluations(self, state, dim: int):
        """The gradient evaluations of the update that returned `state`, on a problem of
        `dim` parameters (see `gradient_evaluations`)."""
        count = self.gradient_evaluations
        return count(state, dim) if callable(count) else count

    def update_extras(self, value, grads, loss_fn) -> dict[str, Any]:
        """The keyword arguments `update` takes besides (grads, state, params).

        A line search gets the loss as optax's do: `value`, `grad` and `value_fn` (and
        hands any further argument to value_fn). A rule with needs_loss gets it under
        every name optax.contrib's rules take it: those three (MoMo reads `value`),
        `obj_fn` (Sophia's Hessian estimate) and `grad_fn(params, i)` (SAM's ascent).
        """
        if not (self.needs_value_fn or self.needs_loss):
            return {}
        extras = dict(value=value, grad=grads, value_fn=loss_fn)
        if self.needs_loss:
            extras |= dict(obj_fn=loss_fn, grad_fn=lambda params, i: jax.grad(loss_fn)(params))
        return extras

    def skip_reason(self, stochastic: bool, dim: int, max_rank: int) -> str | None:
        """Why the rule cannot run on a problem by its capabilities, else None.

        stochastic: the problem trains on minibatches; dim: its parameter count;
        max_rank: the largest rank among its parameter leaves.
        """
        if stochastic and self.needs_value_fn:
            return (
                "uses the loss itself (line search, Polyak step, Hessian); the problem is "
                "stochastic"
            )
        if stochastic and self.deterministic_only:
            return "needs full-batch gradients; the problem is stochastic"
        if self.max_dim is not None and dim > self.max_dim:
            return f"dense second-order method for at most {self.max_dim} parameters"
        if self.matrix_only and max_rank < 2:
            return "updates matrix parameters only; the problem has none"
        return None


# Grid values are kept to this many significant digits: np.logspace's last bit differs
# between CPUs, a value rounded to 12 digits is the same decimal number everywhere.
GRID_DIGITS = 12


def exact(value: float) -> float:
    """`value` to GRID_DIGITS significant digits: the nearest float to a short decimal."""
    return float(f"{value:.{GRID_DIGITS}g}")


def log_grid(low: float, high: float, per_decade: int = 2) -> tuple[float, ...]:
    """Log-spaced learning rates from `low` to `high`, `per_decade` points per factor of 10,
    each `exact` (the same decimal values on every machine)."""
    decades = np.log10(high) - np.log10(low)
    points = int(round(decades * per_decade)) + 1
    return tuple(exact(x) for x in np.logspace(np.log10(low), np.log10(high), points))


LR_GRID = log_grid(1e-4, 1.0)


def collect(package) -> tuple[dict[str, OptimizerSpec], dict[str, Any]]:
    """Every `REGISTRY` declared by a module of `package`, merged in module-name order,
    and the public names (`__all__`) of those modules, for the package to export."""
    entries: dict[str, OptimizerSpec] = {}
    exports: dict[str, Any] = {}
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        if not hasattr(module, "REGISTRY"):
            continue
        duplicates = sorted(set(module.REGISTRY) & set(entries))
        if duplicates:
            raise ValueError(f"{module.__name__} registers {duplicates} a second time")
        entries.update(module.REGISTRY)
        exports.update({name: getattr(module, name) for name in module.__all__})
    return entries, exports
