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


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(sgd, LR_GRID, optax_name="sgd"),
    "momentum": OptimizerSpec(sgd, LR_GRID, {"momentum": 0.9}, optax_name="sgd"),
    "nesterov": OptimizerSpec(sgd, LR_GRID, {"momentum": 0.9, "nesterov": True}, optax_name="sgd"),
    "adam": OptimizerSpec(adam, LR_GRID, optax_name="adam"),
    # Part A: SGD variants and the Adam-like adaptive rules.
    "heavy_ball": OptimizerSpec(heavy_ball, LR_GRID, {"momentum": 0.9}),
    "noisy_sgd": OptimizerSpec(noisy_sgd, LR_GRID, optax_name="noisy_sgd"),
    "sign_sgd": OptimizerSpec(sign_sgd, LR_GRID, optax_name="sign_sgd"),
    "signum": OptimizerSpec(signum, LR_GRID, optax_name="signum"),
    "polyak_sgd": OptimizerSpec(
        polyak_sgd_by_scaling, log_grid(1e-2, 10.0), optax_name="polyak_sgd", needs_value_fn=True
    ),
    "adagrad": OptimizerSpec(adagrad, log_grid(1e-3, 10.0), optax_name="adagrad"),
    "rmsprop": OptimizerSpec(rmsprop, LR_GRID, optax_name="rmsprop"),
    "adadelta": OptimizerSpec(adadelta, log_grid(1e-2, 100.0), optax_name="adadelta"),
    "adamw": OptimizerSpec(adamw, LR_GRID, optax_name="adamw"),
    "nadam": OptimizerSpec(nadam, LR_GRID, optax_name="nadam"),
    "nadamw": OptimizerSpec(nadamw, LR_GRID, optax_name="nadamw"),
    "adamax": OptimizerSpec(adamax, LR_GRID, optax_name="adamax"),
    "adamaxw": OptimizerSpec(adamaxw, LR_GRID, optax_name="adamaxw"),
    "amsgrad": OptimizerSpec(amsgrad, LR_GRID, optax_name="amsgrad"),
    "radam": OptimizerSpec(radam, LR_GRID, optax_name="radam"),
    "adabelief": OptimizerSpec(adabelief, LR_GRID, optax_name="adabelief"),
    "yogi": OptimizerSpec(yogi, LR_GRID, optax_name="yogi"),
    # Part B: sign, trust-ratio, factored, optimistic and second-order rules.
    "lion": OptimizerSpec(lion, log_grid(1e-5, 1e-1), optax_name="lion"),
    "lamb": OptimizerSpec(lamb, LR_GRID, optax_name="lamb"),
    "lars": OptimizerSpec(lars, log_grid(1e-2, 1e2), optax_name="lars"),
    "novograd": OptimizerSpec(novograd, LR_GRID, optax_name="novograd"),
    "adan": OptimizerSpec(adan, LR_GRID, optax_name="adan"),
    "fromage": OptimizerSpec(fromage, LR_GRID, optax_name="fromage"),
    "rprop": OptimizerSpec(rprop, LR_GRID, optax_name="rprop"),
    "sm3": OptimizerSpec(sm3, log_grid(1e-3, 10.0), optax_name="sm3"),
    "adafactor": OptimizerSpec(adafactor, LR_GRID, optax_name="adafactor"),
    "optimistic_gradient_descent": OptimizerSpec(
        optimistic_gradient_descent, LR_GRID, optax_name="optimistic_gradient_descent"
    ),
    "optimistic_adam": OptimizerSpec(optimistic_adam, LR_GRID, optax_name="optimistic_adam"),
    "optimistic_adam_v2": OptimizerSpec(
        optimistic_adam_v2, LR_GRID, optax_name="optimistic_adam_v2"
    ),
    "lbfgs": OptimizerSpec(
        lbfgs,
        log_grid(0.1, 1.0),
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
