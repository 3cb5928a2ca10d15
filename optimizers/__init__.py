"""Hand-written gradient optimizers with the names, arguments and defaults of optax.

    from optimizers import adam, apply_updates
    opt = adam(learning_rate=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

`OPTIMIZERS` maps each benchmark name to an `OptimizerSpec`: the factory, the
hyperparameters the benchmark fixes, its learning-rate search grid, its search space
(`Range`, `Choice`) and default learning rate, the optax alias of the same meaning,
and its capabilities. Every family module declares its own
entries as `REGISTRY` beside its factories and its public names as `__all__`; this
package only collects them (`optimizers.registry.collect`), so that adding an
optimizer is one new file. The tests and the benchmark loop over the registry; the
settings the tests build each rule with live in tests/parity_settings.py.
"""

import sys

from optimizers import schedules, transforms
from optimizers.base import Optimizer, apply_updates
from optimizers.fused import fused_step
from optimizers.registry import Choice, OptimizerSpec, Range, collect

# The benchmark lists, runs and tabulates the optimizers in this order: the rules of the
# first release as they have always been listed, then every later one in the order
# `collect` finds them (module name, then the module's REGISTRY).
_FIRST_RELEASE = (
    "sgd", "momentum", "nesterov", "adam", "heavy_ball", "noisy_sgd", "sign_sgd", "signum",
    "polyak_sgd", "adagrad", "rmsprop", "adadelta", "adamw", "nadam", "nadamw", "adamax",
    "adamaxw", "amsgrad", "radam", "adabelief", "yogi", "lion", "lamb", "lars", "novograd",
    "adan", "fromage", "rprop", "sm3", "adafactor", "optimistic_gradient_descent",
    "optimistic_adam", "optimistic_adam_v2", "lbfgs", "newton",
)  # fmt: skip

_collected, _exports = collect(sys.modules[__name__])
OPTIMIZERS: dict[str, OptimizerSpec] = {
    name: _collected[name] for name in _FIRST_RELEASE
} | _collected
globals().update(_exports)

__all__ = [
    "OPTIMIZERS",
    "Choice",
    "Optimizer",
    "OptimizerSpec",
    "Range",
    "apply_updates",
    "fused_step",
    "schedules",
    "transforms",
    *_exports,
]
