"""The settings the tests build each registered optimizer with, by registry name.

`settings(name)` gives a rule's non-default hyperparameters, the option sets checked
besides them, and the argument of its optax alias (the entry's `optax_name`) that takes
the registry's learning rate. tests/test_parity.py compares a rule built with them with
that alias; the goldens, the fused-step and bad-input tests and tests/test_research_use.py
build it with them too. A rule not listed here runs at its defaults; the rules of
optax.contrib have theirs in tests/test_parity_contrib.py's CASES, beside the reference
each is checked against (and the goldens take those).
"""

from dataclasses import dataclass, field
from typing import Any

import jax

from bench.sweep.program import compiler_options


@dataclass(frozen=True)
class Settings:
    """How the tests build one registered rule."""

    # Non-default hyperparameters the parity tests pass to both us and optax.
    hparams: dict[str, Any] = field(default_factory=dict)
    # Further option sets, each applied over hparams, that the parity tests also check.
    variants: tuple[dict[str, Any], ...] = ()
    # The optax alias's argument that the registry's factory takes as learning_rate.
    learning_rate_arg: str = "learning_rate"


def matrices_only(params):
    """A weight-decay mask: decay leaves of rank >= 2 only."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def decaying_weight_decay(count):
    """A weight-decay schedule."""
    return 0.05 * 0.99**count


SETTINGS: dict[str, Settings] = {
    "momentum": Settings({"momentum": 0.7}),
    "nesterov": Settings({"momentum": 0.7, "nesterov": True}),
    "adam": Settings({"b1": 0.8, "b2": 0.99, "eps": 1e-6}),
    "noisy_sgd": Settings({"eta": 0.02, "gamma": 0.6, "key": 7}),
    "signum": Settings({"beta": 0.8}),
    # optax.polyak_sgd has no learning_rate: the registry's wraps it as `scaling`.
    "polyak_sgd": Settings(
        {"max_learning_rate": 0.8, "f_min": 11.0, "eps": 1e-3},
        variants=({"variant": "sps+", "f_min": 12.0},),
        learning_rate_arg="scaling",
    ),
    "adagrad": Settings({"initial_accumulator_value": 0.3, "eps": 1e-5}),
    "rmsprop": Settings(
        {"decay": 0.8, "eps": 1e-6, "initial_scale": 0.2},
        variants=(
            {"centered": True},
            {"momentum": 0.6},
            {"momentum": 0.6, "nesterov": True},
            {"eps_in_sqrt": False, "bias_correction": True},
            {
                "centered": True,
                "eps_in_sqrt": False,
                "bias_correction": True,
                "momentum": 0.6,
                "nesterov": True,
            },
        ),
    ),
    "adadelta": Settings(
        {"rho": 0.8, "eps": 1e-3, "weight_decay": 0.01},
        variants=({"weight_decay_mask": matrices_only},),
    ),
    "adamw": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-9, "weight_decay": 0.05},
        variants=(
            {"mask": matrices_only},
            {"mask": {"w": True, "b": False, "s": True}},
            {"weight_decay": decaying_weight_decay, "mu_dtype": "float32"},
        ),
    ),
    "nadam": Settings({"b1": 0.8, "b2": 0.99, "eps": 1e-6}),
    "nadamw": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
        variants=({"mask": matrices_only},),
    ),
    "adamax": Settings({"b1": 0.8, "b2": 0.99, "eps": 1e-6}),
    "adamaxw": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
        variants=({"mask": matrices_only},),
    ),
    "amsgrad": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-9},
        variants=({"bias_correction_mu": False, "bias_correction_nu": False},),
    ),
    "radam": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "threshold": 4.0},
        variants=({"nesterov": True},),
    ),
    "adabelief": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-10},
        variants=({"nesterov": True},),
    ),
    "yogi": Settings({"b1": 0.8, "b2": 0.99, "eps": 1e-4}),
    "lion": Settings(
        {"b1": 0.8, "b2": 0.95, "weight_decay": 1e-2},
        variants=({"mask": matrices_only, "weight_decay": decaying_weight_decay},),
    ),
    "lamb": Settings(
        {"b1": 0.8, "b2": 0.99, "eps": 1e-5, "weight_decay": 1e-2},
        variants=(
            {"mask": {"w": True, "b": False, "s": True}, "weight_decay": decaying_weight_decay},
        ),
    ),
    "lars": Settings(
        {
            "weight_decay": 1e-3,
            "trust_coefficient": 0.02,
            "eps": 1e-8,
            "momentum": 0.8,
            "nesterov": True,
        },
        variants=({"weight_decay_mask": matrices_only, "nesterov": False},),
    ),
    "novograd": Settings({"b1": 0.8, "b2": 0.5, "eps": 1e-5, "weight_decay": 1e-3}),
    "adan": Settings(
        {"b1": 0.9, "b2": 0.9, "b3": 0.95, "eps": 1e-6, "eps_root": 1e-6, "weight_decay": 1e-3},
        variants=({"mask": matrices_only, "weight_decay": decaying_weight_decay},),
    ),
    "fromage": Settings({"min_norm": 1e-4}),
    "rprop": Settings(
        {"eta_minus": 0.4, "eta_plus": 1.3, "min_step_size": 1e-5, "max_step_size": 1.0}
    ),
    "sm3": Settings({"momentum": 0.7}),
    "adafactor": Settings(
        {
            "min_dim_size_to_factor": 2,
            "decay_rate": 0.7,
            "clipping_threshold": 0.5,
            "momentum": 0.5,
            "weight_decay_rate": 1e-3,
            "eps": 1e-20,
            # A float32 buffer (the default) would round the last-ulp float64 differences
            # between traced and constant hyperparameters up to float32 ulps.
            "dtype_momentum": "float64",
        },
        variants=(
            {"weight_decay_mask": matrices_only, "factored": False, "momentum": None},
            {
                "learning_rate": None,
                "clipping_threshold": None,
                "multiply_by_parameter_scale": False,
            },
        ),
    ),
    "optimistic_gradient_descent": Settings({"alpha": 0.7, "beta": 0.4}),
    "optimistic_adam": Settings({"optimism": 0.02, "b1": 0.8, "b2": 0.99}),
    "optimistic_adam_v2": Settings(
        {"alpha": 0.8, "beta": 0.5, "b1": 0.8, "b2": 0.99}, variants=({"nesterov": False},)
    ),
    "lbfgs": Settings({"memory_size": 5}),
    "soap": Settings(
        {
            "betas": (0.9, 0.95),
            "shampoo_beta": 0.9,
            "weight_decay": 1e-3,
            "precondition_frequency": 3,
        }
    ),
    "distributed_shampoo": Settings(
        {
            "graft_type": "rmsprop",
            "start_preconditioning_step": 3,
            "preconditioning_compute_steps": 2,
            "block_size": 3,
        }
    ),
}


def settings(name: str) -> Settings:
    """The test settings of the registered rule `name` (its defaults where none are set)."""
    return SETTINGS.get(name, Settings())


def compiled(function, *args):
    """`function(*args)`, jitted and compiled as the benchmark compiles its brief sweeps
    (`bench.sweep.program.compiler_options(0)`: LLVM without optimisation, XLA's older
    loop emitters): the same IEEE arithmetic as XLA's default level, a third of its compile
    time, which is most of a parity test's. Both sides of a comparison are one program."""
    return jax.jit(function).lower(*args).compile(compiler_options(0))(*args)
