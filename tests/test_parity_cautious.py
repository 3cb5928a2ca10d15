"""Per-step parity of LaProp and the cautious rules with their references, and their
float32 runs against their own float64 trajectories.

Optional like tests/test_parity_torch.py: skipped without torch and pytorch-optimizer;
the cases checked against timm's c-variants (cautious_adamw, cautious_nadamw, which
pytorch_optimizer lacks) are skipped without timm. Every reference is built with
foreach=False: pytorch_optimizer's batched LaProp path rounds its step factor to
float32 whatever the params' dtype, and the per-parameter path is the one its
`cautious=True` takes anyway.

Every case runs at hyperparameters away from the defaults, with each option of the rule
as a variant. The mask is a discontinuous function of the iterate: a coordinate whose
d_t * g_t is within rounding of 0 can be kept on one side and zeroed on the other. In
float64 the settings below keep the two libraries' trajectories away from such ties (no
step differs in its mask), so that the comparison is of the arithmetic; float32 meets
them near the minimiser (see ATOL32).
"""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

from test_parity import initial_params, loss  # noqa: E402
from test_parity_torch import RTOL64, STEPS, TorchCase, assert_same_trajectory  # noqa: E402

from optimizers import OPTIMIZERS, apply_updates  # noqa: E402
from optimizers.cautious import caution  # noqa: E402

pytestmark = pytest.mark.reference


def _betas(kwargs, *names):
    """Our separate b1, b2 (, b3) as the reference's `betas` tuple."""
    return tuple(kwargs.pop(name) for name in names)


def _laprop(params, learning_rate, **kw):
    betas = _betas(kw, "b1", "b2")
    return pytorch_optimizer.LaProp(params, lr=learning_rate, betas=betas, foreach=False, **kw)


def _cautious_laprop(params, learning_rate, **kw):
    return _laprop(params, learning_rate, cautious=True, **kw)


def _cautious_lion(params, learning_rate, **kw):
    betas = _betas(kw, "b1", "b2")
    return pytorch_optimizer.Lion(
        params, lr=learning_rate, betas=betas, cautious=True, foreach=False, **kw
    )


def _cautious_mars(params, learning_rate, learning_rate_1d=3e-3, **kw):
    return pytorch_optimizer.MARS(
        params, lr=learning_rate, lr_1d=learning_rate_1d, cautious=True, foreach=False, **kw
    )


def _cautious_adopt(params, learning_rate, use_clipping=True, clip_value_fn=None, **kw):
    betas = _betas(kw, "b1", "b2")
    clip = {"clip_lambda": clip_value_fn if use_clipping else None}
    if use_clipping and clip_value_fn is None:
        clip = {}  # the reference's default, step ** 0.25 as ours
    return pytorch_optimizer.ADOPT(
        params, lr=learning_rate, betas=betas, cautious=True, foreach=False, **clip, **kw
    )


def _cautious_ademamix(params, learning_rate, **kw):
    betas = _betas(kw, "b1", "b2", "b3")
    return pytorch_optimizer.AdEMAMix(
        params, lr=learning_rate, betas=betas, cautious=True, foreach=False, **kw
    )


def _timm_optim(module):
    """timm.optim's `module`, loaded without importing timm itself: timm's package imports
    its models, which need torchvision's compiled operators (a build matching torch's);
    its optimizers need torch alone. The test skips without timm."""
    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        pytest.skip("timm is not installed")
    package = "_timm_optim"
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [str(Path(spec.origin).parent / "optim")]
        sys.modules[package] = stub
    return importlib.import_module(f"{package}.{module}")


def _timm(module, name):
    """timm's optimizer class `name` of timm.optim's `module`, with caution=True."""

    def build(params, learning_rate, **kw):
        betas = _betas(kw, "b1", "b2")
        return getattr(_timm_optim(module), name)(
            params, lr=learning_rate, betas=betas, caution=True, foreach=False, **kw
        )

    return build


CASES = {
    "laprop": TorchCase(
        _laprop,
        {
            "learning_rate": 0.05,
            "b1": 0.8,
            "b2": 0.95,
            "weight_decay": 1e-2,
            # As for MARS in test_parity_torch: near the minimum an Adam-like step with a
            # tiny eps is sign-like, and last-bit differences grow without bound there
            # (with eps = 1e-2, cautious_laprop's reach 2e-9 by step 300); eps = 0.1
            # keeps the step linear in the gradient there (both sides alike).
            "eps": 0.1,
        },
        variants=(
            {"centered": True, "steps_before_using_centered": 5},
            {"ams_bound": True},
            {"fixed_decay": True},
        ),
    ),
    "cautious_laprop": TorchCase(
        _cautious_laprop,
        {"learning_rate": 0.05, "b1": 0.8, "b2": 0.95, "weight_decay": 1e-2, "eps": 0.1},
        variants=(
            {"centered": True, "steps_before_using_centered": 5},
            {"ams_bound": True},
            {"fixed_decay": True},
        ),
    ),
    "cautious_lion": TorchCase(
        _cautious_lion,
        {"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "weight_decay": 0.1},
        variants=({"weight_decouple": False}, {"fixed_decay": True, "weight_decay": 1e-3}),
    ),
    "cautious_mars": TorchCase(
        _cautious_mars,
        {
            "learning_rate": 0.05,
            "betas": (0.9, 0.95),
            "gamma": 0.05,
            "learning_rate_1d": 0.01,
            "betas_1d": (0.8, 0.9),
            "weight_decay": 1e-3,
            "weight_decay_1d": 1e-2,
            "eps": 1e-2,  # as for mars in test_parity_torch
        },
        variants=({"optimize_1d": True}, {"mars_type": "lion"}, {"fixed_decay": True}),
    ),
    "cautious_adopt": TorchCase(
        _cautious_adopt,
        {
            "learning_rate": 0.05,
            "b1": 0.8,
            "b2": 0.99,
            # eps floors sqrt(v): with 1e-3 the scaled gradient near the minimum is about
            # +-1 (sign-like) and the trajectories part, 3e-6 by step 300 with the
            # decoupled decay; 0.05 keeps it linear there.
            "eps": 0.05,
            "weight_decay": 1e-2,
            "clip_value_fn": lambda t: 0.3 * t**0.25,
        },
        variants=(
            {"weight_decouple": True},
            {"weight_decouple": True, "fixed_decay": True, "weight_decay": 1e-3},
            {"use_clipping": False},
        ),
    ),
    "cautious_ademamix": TorchCase(
        _cautious_ademamix,
        {
            "learning_rate": 0.05,
            "b1": 0.8,
            "b2": 0.95,
            "b3": 0.99,
            "alpha": 2.0,
            "eps": 1e-2,
            "weight_decay": 1e-2,
        },
        variants=(
            {"weight_decouple": True},
            {"weight_decouple": True, "fixed_decay": True, "weight_decay": 1e-3},
        ),
    ),
    "cautious_adamw": TorchCase(
        _timm("adamw", "AdamWLegacy"),
        {"learning_rate": 0.05, "b1": 0.8, "b2": 0.95, "eps": 1e-2, "weight_decay": 1e-2},
    ),
    "cautious_nadamw": TorchCase(
        _timm("nadamw", "NAdamW"),
        {"learning_rate": 0.05, "b1": 0.8, "b2": 0.95, "eps": 1e-2, "weight_decay": 1e-2},
    ),
}

CASE_VARIANTS = [
    pytest.param(name, variant, id=f"{name}-{'+'.join(variant) or 'default'}")
    for name, case in CASES.items()
    for variant in ({}, *case.variants)
]


# RTOL64 (1e-10, test_parity_torch's): the same float64 operations in another order, a
# few roundings of 1.1e-16 per step. Measured over the 300 steps: 2.5e-11 at most
# (cautious_mars with mars_type="lion", on params near 0), under 2e-12 for the rest.
@pytest.mark.parametrize(("name", "variant"), CASE_VARIANTS)
def test_per_step_parity_with_the_reference(name, variant):
    kwargs = {**CASES[name].hparams, **variant}
    assert_same_trajectory(name, CASES[name].reference, kwargs, rtol=RTOL64)


def warmup_then_decay(count):
    """A learning-rate schedule from 0 (LaProp's l_t = 0 at the first step), for counts
    that are Python ints (the reference's) or int32 arrays (ours)."""
    return 0.05 * (1 - 0.8**count) * 0.995**count


class ScheduledSteps:
    """A torch optimizer whose learning rate is set from `schedule(k)` before its k-th
    step, as a torch scheduler sets it."""

    def __init__(self, optimizer, schedule):
        self.optimizer, self.schedule, self.count = optimizer, schedule, 0

    def step(self):
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.schedule(self.count))
        self.count += 1
        self.optimizer.step()


@pytest.mark.parametrize("name", ["laprop", "cautious_laprop"])
def test_a_learning_rate_schedule_enters_the_momentum_as_in_the_reference(name):
    # LaProp's momentum sums lr_t-scaled steps and its bias correction is the moving
    # average of lr_t: a schedule tests both, and lr_0 = 0 the guard on l_t = 0.
    def reference(params, learning_rate, **kw):
        return ScheduledSteps(CASES[name].reference(params, learning_rate(0), **kw), learning_rate)

    kwargs = {**CASES[name].hparams, "learning_rate": warmup_then_decay}
    assert_same_trajectory(name, reference, kwargs, rtol=RTOL64)


def float64_steps(name, kwargs):
    """The params and state before each of STEPS float64 steps of rule `name` from
    initial_params, and the params after each."""
    opt = OPTIMIZERS[name].factory(**kwargs)

    def step(carry, _):
        params, state = carry
        updates, new_state = opt.update(jax.grad(loss)(params), state, params)
        after = apply_updates(params, updates)
        return (after, new_state), (carry, after)

    params = initial_params(jnp.float64)
    run = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=STEPS)[1])
    return run(params)


def as_float32(tree):
    """Every floating leaf of `tree` in float32 (the count stays an int32)."""
    return jax.tree.map(
        lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


# Each float32 step starts from the float64 trajectory's params and state, rounded to
# float32, and is compared with the float64 step from the same point. (A free float32 run
# drifts from the float64 one by rounding until a mask is decided differently on the two
# runs, and from then on they are different trajectories: 1e-4 to 9e-3 apart for
# cautious_mars, cautious_adopt and cautious_ademamix, parting at steps 77 to 117.)
# Started afresh, the float32 step differs from the float64 one by the rounding of its
# inputs and of its arithmetic, about 6e-8 relative on params of order one (measured:
# 1.3e-7 at most); ATOL32 = 1e-6 leaves room for it, where a mask decided differently
# moves a leaf's step by its rescaling, 1e-5 or more.
ATOL32 = 1e-6
# That holds while the iterate approaches the minimiser. There (by step 130 the losses
# are within 1e-6 of their last value) gradient entries at the rounding level decide
# masks (d_t * g_t within float32 rounding of 0): measured at steps 130 to 199 for
# cautious_mars and cautious_adopt, whose coupled decay makes g_t + wd * theta_{t-1}
# vanish entirely at its minimiser, moving a step by up to 6.4e-5. Later steps are held
# only to ATOL32_AT_MINIMUM, which still catches a float32 overflow, a NaN or a lost
# update (the steps are lr * |d_t|, 1e-2 and more).
APPROACH = 120
ATOL32_AT_MINIMUM = 1e-3


@pytest.mark.parametrize("name", list(CASES))
def test_each_float32_step_follows_the_float64_step(name):
    kwargs = CASES[name].hparams
    (params64, state64), after64 = float64_steps(name, kwargs)
    opt = OPTIMIZERS[name].factory(**kwargs)

    def step(params, state):
        updates, new_state = opt.update(jax.grad(loss)(params), state, params)
        return apply_updates(params, updates), new_state

    after32, state32 = jax.jit(jax.vmap(step))(as_float32(params64), as_float32(state64))
    for leaf in jax.tree.leaves((after32, state32)):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    for a, b in zip(jax.tree.leaves(after32), jax.tree.leaves(after64), strict=True):
        error = np.abs(np.asarray(a, np.float64) - b)
        np.testing.assert_array_less(error[:APPROACH], ATOL32)
        np.testing.assert_array_less(error[APPROACH:], ATOL32_AT_MINIMUM)


def test_caution_keeps_the_descent_coordinates_and_rescales_them():
    d = jnp.array([1.0, -2.0, 3.0, -4.0, 0.0])
    g = jnp.array([0.5, 1.0, 2.0, -1.0, 1.0])
    kept = jnp.array([1.0, 0.0, 3.0, -4.0, 0.0])
    # 3 of 5 kept: pytorch_optimizer rescales by 5 / (3 + 1), timm by 1 / (3 / 5).
    np.testing.assert_allclose(caution(d, g), kept * 5 / 4, rtol=1e-15)
    np.testing.assert_allclose(caution(d, g, "timm"), kept * 5 / 3, rtol=1e-15)
    np.testing.assert_array_equal(caution(d, g, None), kept)
    # Nothing kept: timm's floor on the kept fraction keeps its rescaling finite.
    np.testing.assert_array_equal(caution(d, -d, "timm"), jnp.zeros(5))
