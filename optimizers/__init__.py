"""Hand-written gradient optimizers with the names, arguments and defaults of optax.

    from optimizers import adam, apply_updates
    opt = adam(learning_rate=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

`OPTIMIZERS` maps each benchmark name to an `OptimizerSpec`: the factory, the
hyperparameters the benchmark fixes, its learning-rate search grid, non-default
hyperparameters for the parity tests, and its capabilities. A family module may
declare its own entries as `REGISTRY` beside its factories; they are collected
here (`optimizers.registry`), so that adding an optimizer is one new file. The
tests and the benchmark loop over the registry.
"""

import sys

import jax

from optimizers import schedules, transforms
from optimizers.adabelief import adabelief
from optimizers.adadelta import adadelta
from optimizers.adafactor import adafactor
from optimizers.adagrad import adagrad
from optimizers.adam import adam, adamw, nadam, nadamw
from optimizers.adamax import adamax, adamaxw
from optimizers.adan import adan
from optimizers.amsgrad import amsgrad
from optimizers.base import Optimizer, apply_updates, check_nonnegative
from optimizers.fromage import fromage
from optimizers.fused import fused_step
from optimizers.heavy_ball import heavy_ball
from optimizers.lamb import lamb
from optimizers.lars import lars
from optimizers.lbfgs import lbfgs
from optimizers.lion import lion
from optimizers.newton import newton
from optimizers.noisy_sgd import noisy_sgd
from optimizers.novograd import novograd
from optimizers.optimistic import optimistic_adam, optimistic_adam_v2, optimistic_gradient_descent
from optimizers.polyak_sgd import polyak_sgd
from optimizers.radam import radam
from optimizers.registry import LR_GRID, OptimizerSpec, collect, log_grid
from optimizers.rmsprop import rmsprop
from optimizers.rprop import rprop
from optimizers.sgd import sgd
from optimizers.sign_sgd import sign_sgd, signum
from optimizers.sm3 import sm3
from optimizers.yogi import yogi


def polyak_sgd_by_scaling(learning_rate, **hparams):
    """polyak_sgd with `scaling`, the learning rate of its inner SGD step, as learning_rate.

    optax.polyak_sgd has no argument named learning_rate; the benchmark sweeps this one.
    """
    check_nonnegative("learning_rate", learning_rate)
    return polyak_sgd(scaling=learning_rate, **hparams)


def _matrices_only(params):
    """A weight-decay mask for the parity tests: decay leaves of rank >= 2 only."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def _decaying_weight_decay(count):
    """A weight-decay schedule for the parity tests."""
    return 0.05 * 0.99**count


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
    # Part A: SGD variants and the Adam-like adaptive rules.
    "heavy_ball": OptimizerSpec(heavy_ball, LR_GRID, {"momentum": 0.9}),
    "noisy_sgd": OptimizerSpec(
        noisy_sgd,
        LR_GRID,
        test_hparams={"eta": 0.02, "gamma": 0.6, "key": 7},
        optax_name="noisy_sgd",
    ),
    "sign_sgd": OptimizerSpec(sign_sgd, LR_GRID, optax_name="sign_sgd"),
    "signum": OptimizerSpec(signum, LR_GRID, test_hparams={"beta": 0.8}, optax_name="signum"),
    "polyak_sgd": OptimizerSpec(
        polyak_sgd_by_scaling,
        log_grid(1e-2, 10.0),
        test_hparams={"max_learning_rate": 0.8, "f_min": 11.0, "eps": 1e-3},
        optax_name="polyak_sgd",
        needs_value_fn=True,
        test_variants=({"variant": "sps+", "f_min": 12.0},),
        learning_rate_arg="scaling",
    ),
    "adagrad": OptimizerSpec(
        adagrad,
        log_grid(1e-3, 10.0),
        test_hparams={"initial_accumulator_value": 0.3, "eps": 1e-5},
        optax_name="adagrad",
    ),
    "rmsprop": OptimizerSpec(
        rmsprop,
        LR_GRID,
        test_hparams={"decay": 0.8, "eps": 1e-6, "initial_scale": 0.2},
        optax_name="rmsprop",
        test_variants=(
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
    "adadelta": OptimizerSpec(
        adadelta,
        log_grid(1e-2, 100.0),
        test_hparams={"rho": 0.8, "eps": 1e-3, "weight_decay": 0.01},
        optax_name="adadelta",
        test_variants=({"weight_decay_mask": _matrices_only},),
    ),
    "adamw": OptimizerSpec(
        adamw,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-9, "weight_decay": 0.05},
        optax_name="adamw",
        test_variants=(
            {"mask": _matrices_only},
            {"mask": {"w": True, "b": False, "s": True}},
            {"weight_decay": _decaying_weight_decay, "mu_dtype": "float32"},
        ),
    ),
    "nadam": OptimizerSpec(
        nadam, LR_GRID, test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6}, optax_name="nadam"
    ),
    "nadamw": OptimizerSpec(
        nadamw,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
        optax_name="nadamw",
        test_variants=({"mask": _matrices_only},),
    ),
    "adamax": OptimizerSpec(
        adamax, LR_GRID, test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6}, optax_name="adamax"
    ),
    "adamaxw": OptimizerSpec(
        adamaxw,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
        optax_name="adamaxw",
        test_variants=({"mask": _matrices_only},),
    ),
    "amsgrad": OptimizerSpec(
        amsgrad,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-9},
        optax_name="amsgrad",
        test_variants=({"bias_correction_mu": False, "bias_correction_nu": False},),
    ),
    "radam": OptimizerSpec(
        radam,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-6, "threshold": 4.0},
        optax_name="radam",
        test_variants=({"nesterov": True},),
    ),
    "adabelief": OptimizerSpec(
        adabelief,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-10},
        optax_name="adabelief",
        test_variants=({"nesterov": True},),
    ),
    "yogi": OptimizerSpec(
        yogi, LR_GRID, test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-4}, optax_name="yogi"
    ),
    # Part B: sign, trust-ratio, factored, optimistic and second-order rules.
    "lion": OptimizerSpec(
        lion,
        log_grid(1e-5, 1e-1),
        test_hparams={"b1": 0.8, "b2": 0.95, "weight_decay": 1e-2},
        optax_name="lion",
        test_variants=({"mask": _matrices_only, "weight_decay": _decaying_weight_decay},),
    ),
    "lamb": OptimizerSpec(
        lamb,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.99, "eps": 1e-5, "weight_decay": 1e-2},
        optax_name="lamb",
        test_variants=(
            {"mask": {"w": True, "b": False, "s": True}, "weight_decay": _decaying_weight_decay},
        ),
    ),
    "lars": OptimizerSpec(
        lars,
        log_grid(1e-2, 1e2),
        test_hparams={
            "weight_decay": 1e-3,
            "trust_coefficient": 0.02,
            "eps": 1e-8,
            "momentum": 0.8,
            "nesterov": True,
        },
        optax_name="lars",
        test_variants=({"weight_decay_mask": _matrices_only, "nesterov": False},),
    ),
    "novograd": OptimizerSpec(
        novograd,
        LR_GRID,
        test_hparams={"b1": 0.8, "b2": 0.5, "eps": 1e-5, "weight_decay": 1e-3},
        optax_name="novograd",
    ),
    "adan": OptimizerSpec(
        adan,
        LR_GRID,
        test_hparams={
            "b1": 0.9,
            "b2": 0.9,
            "b3": 0.95,
            "eps": 1e-6,
            "eps_root": 1e-6,
            "weight_decay": 1e-3,
        },
        optax_name="adan",
        test_variants=({"mask": _matrices_only, "weight_decay": _decaying_weight_decay},),
    ),
    "fromage": OptimizerSpec(
        fromage, LR_GRID, test_hparams={"min_norm": 1e-4}, optax_name="fromage"
    ),
    "rprop": OptimizerSpec(
        rprop,
        LR_GRID,
        test_hparams={
            "eta_minus": 0.4,
            "eta_plus": 1.3,
            "min_step_size": 1e-5,
            "max_step_size": 1.0,
        },
        optax_name="rprop",
    ),
    "sm3": OptimizerSpec(
        sm3, log_grid(1e-3, 10.0), test_hparams={"momentum": 0.7}, optax_name="sm3"
    ),
    "adafactor": OptimizerSpec(
        adafactor,
        LR_GRID,
        test_hparams={
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
        optax_name="adafactor",
        test_variants=(
            {"weight_decay_mask": _matrices_only, "factored": False, "momentum": None},
            {
                "learning_rate": None,
                "clipping_threshold": None,
                "multiply_by_parameter_scale": False,
            },
        ),
    ),
    "optimistic_gradient_descent": OptimizerSpec(
        optimistic_gradient_descent,
        LR_GRID,
        test_hparams={"alpha": 0.7, "beta": 0.4},
        optax_name="optimistic_gradient_descent",
    ),
    "optimistic_adam": OptimizerSpec(
        optimistic_adam,
        LR_GRID,
        test_hparams={"optimism": 0.02, "b1": 0.8, "b2": 0.99},
        optax_name="optimistic_adam",
    ),
    "optimistic_adam_v2": OptimizerSpec(
        optimistic_adam_v2,
        LR_GRID,
        test_hparams={"alpha": 0.8, "beta": 0.5, "b1": 0.8, "b2": 0.99},
        optax_name="optimistic_adam_v2",
        test_variants=({"nesterov": False},),
    ),
    "lbfgs": OptimizerSpec(
        lbfgs,
        log_grid(0.1, 1.0),
        test_hparams={"memory_size": 5},
        optax_name="lbfgs",
        needs_value_fn=True,
        deterministic_only=True,
        # The gradient the update is given and the line search's trial points.
        gradient_evaluations=lambda state, dim: 1 + state.evaluations,
    ),
    "newton": OptimizerSpec(
        newton,
        log_grid(0.1, 1.0),
        needs_value_fn=True,
        deterministic_only=True,
        max_dim=100,
        # The gradient and the dense Hessian, d gradients' worth.
        gradient_evaluations=lambda state, dim: 1 + dim,
    ),
}
# The entries each family module declares beside its factories (optimizers.registry).
_collected, _exports = collect(sys.modules[__name__])
if set(_collected) & set(OPTIMIZERS):
    raise ValueError(f"registered twice: {sorted(set(_collected) & set(OPTIMIZERS))}")
OPTIMIZERS |= _collected
globals().update(_exports)

__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "OptimizerSpec",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "amsgrad",
    "apply_updates",
    "fromage",
    "fused_step",
    "heavy_ball",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "nadam",
    "nadamw",
    "newton",
    "noisy_sgd",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "polyak_sgd",
    "radam",
    "rmsprop",
    "rprop",
    "schedules",
    "sgd",
    "sign_sgd",
    "signum",
    "sm3",
    "transforms",
    "yogi",
    *_exports,
]
