"""Per-step parity of `distributed_shampoo` with `pytorch_optimizer.ScalableShampoo`.

Optional, as tests/test_parity_torch.py: needs torch and pytorch-optimizer, and is
skipped without them. Both sides run STEPS steps in float64 from test_parity.py's
params (a 3 x 4 matrix, a 4-vector, a scalar) and are compared at every step.

Why 1e-10 holds for an iterative inverse root (measured: 3e-12 at most over the
variants, 6e-14 for the default one):
- The coupled Newton iteration stops at the first error <= 1e-3 (or an error growing
  by more than 1.2 times). Both sides run the same iteration on matrices equal to the
  last bits, so they stop at the same iteration unless an error lands within ~1e-13
  of a threshold; on the default variant's 800 roots the closest error is 1.2% away
  from 1e-3 and 19% away from the 1.2 ratio (5 to 11 iterations per root). A
  different count would move a root by up to 1e-3 relative, and the test would see it.
- The ridge eps * lambda_max comes from 100 power iterations, from torch.randn there
  (seeded below) and from a fixed vector here. For blocks with lambda_2 / lambda_1 <=
  0.6 (0.46 at most on the default variant) both reach lambda_max to the last bit
  (0.6^200); where the gap is smaller the difference is matrix_eps times a
  Rayleigh-quotient error, far below 1e-10.
- Near the minimum a step that does not shrink with the gradient is chaotic, and both
  libraries' last-bit differences grow tenfold every ~20 steps from there (to 1e-4 and
  more by step 300): sqrtn's graft (sign(g), a step of fixed length), and, with a
  fast-forgetting b2 (0.99), the rmsprop graft and the ungrafted step (g / sqrt(a) and
  H^(-1/p) g become sign-like once the statistics have forgotten the large gradients).
  So b2 stays 0.999, and the sqrtn variant takes a learning rate that does not reach
  that regime in STEPS steps (1.3e-12 there).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

from test_parity import initial_params, loss  # noqa: E402
from test_parity_torch import STEPS, assert_same_trajectory, ours  # noqa: E402

import optimizers  # noqa: E402
from optimizers import OPTIMIZERS, apply_updates  # noqa: E402

pytestmark = pytest.mark.reference


def scalable_shampoo(params, learning_rate, **kwargs):
    # Its power iterations start from torch.randn: seeded, so that a run repeats.
    torch.manual_seed(0)
    return pytorch_optimizer.ScalableShampoo(params, lr=learning_rate, **kwargs)


HPARAMS = {
    "learning_rate": 0.05,
    # b2 = 0.999 (the default): see the docstring for faster forgetting.
    "betas": (0.8, 0.999),
    "weight_decay": 1e-3,
    # (3, 4) is preconditioned as [1, 3, 4] (merge_small_dims), cut into blocks of
    # 2 x 2 and 1 x 2 along the last two axes: 1 x 1 and 2 x 2 roots, p = 6; the
    # 4-vector as [1, 4] in two blocks; the scalar takes the graft's step.
    "block_size": 2,
    "preconditioning_compute_steps": 3,
    "start_preconditioning_step": 5,
}
VARIANTS = [
    {},
    {"graft_type": 2, "block_size": 3},  # adagrad; (3, 4) as [3, 4], blocks 3 x 3 and 3 x 1
    {"graft_type": 3},  # rmsprop
    {"graft_type": 4, "learning_rate": 0.01},  # sqrtn (see the docstring)
    {"graft_type": 0},  # no grafting
    {"nesterov": False, "moving_average_for_momentum": True},
    {"decoupled_weight_decay": True, "decoupled_learning_rate": False, "weight_decay": 1e-2},
    {"pre_conditioner_type": 1},  # input axes only
    # Output axis only. block_size=2 would stop the reference: its batched statistics
    # stack unfoldings of blocks of different widths (torch.stack raises).
    {"pre_conditioner_type": 2, "block_size": 3},
    {"use_svd": True},
    {"statistics_compute_steps": 2, "shape_interpretation": False, "inverse_exponent_override": 2},
]


@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: "+".join(f"{k}={v[k]}" for k in v) or "default"
)
def test_per_step_parity_with_scalable_shampoo(variant):
    assert_same_trajectory("distributed_shampoo", scalable_shampoo, {**HPARAMS, **variant})


def test_float32_descends_and_stays_near_float64():
    """float32 params: statistics and roots in float32, the same Newton iteration counts
    (the errors are 4% from the threshold, float32 rounding 1e-7), so the trajectory
    stays within a few float32 roundings per step of float64's (measured: about 1e-6,
    params of order 1); the bound, 1e-5, is below what a different root count or
    exponent moves it (1e-4 and more)."""
    for variant in ({}, {"graft_type": 3}):
        kwargs = {**HPARAMS, **variant}
        single = ours("distributed_shampoo", initial_params(jnp.float32), **kwargs)
        double = ours("distributed_shampoo", initial_params(jnp.float64), **kwargs)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(double), strict=True):
            assert a.shape[0] == STEPS and a.dtype == jnp.float32 and np.all(np.isfinite(a))
            np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=0, atol=1e-5)
        last = jax.tree.map(lambda leaf: leaf[-1], single)
        assert loss(last) < loss(initial_params(jnp.float32)) - 1.0


def test_traced_hyperparameters_match_concrete_ones():
    """The runner vmaps over hyperparameters: no Python branch on their values."""
    params = initial_params(jnp.float64)
    grads = jax.grad(loss)(params)

    def run(learning_rate, beta2, matrix_eps, steps=7):
        opt = optimizers.distributed_shampoo(
            **{
                **HPARAMS,
                "graft_type": 3,
                "learning_rate": learning_rate,
                "betas": (0.9, beta2),
                "matrix_eps": matrix_eps,
            }
        )
        p, state = params, opt.init(params)
        for _ in range(steps):
            updates, state = opt.update(grads, state, p)
            p = apply_updates(p, updates)
        return p

    traced = jax.jit(jax.vmap(run))(
        jnp.array([0.05, 0.1]), jnp.array([0.99, 0.9]), jnp.array([1e-6, 1e-3])
    )
    for i, (lr, b2, eps) in enumerate([(0.05, 0.99, 1e-6), (0.1, 0.9, 1e-3)]):
        concrete = run(lr, b2, eps)
        for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(concrete), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12)


def test_maximize_ascends_the_negated_gradient():
    params = initial_params(jnp.float64)
    grads = jax.grad(loss)(params)
    negated = jax.tree.map(lambda g: -g, grads)
    a, b = (
        optimizers.distributed_shampoo(
            **{**HPARAMS, "start_preconditioning_step": 1, "preconditioning_compute_steps": 1},
            maximize=m,
        )
        for m in (False, True)
    )
    ua, _ = a.update(grads, a.init(params), params)
    ub, _ = b.update(negated, b.init(params), params)
    for x, y in zip(jax.tree.leaves(ua), jax.tree.leaves(ub), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("learning_rate", -1.0),
        ("betas", (1.0, 0.99)),
        ("betas", (0.9, 1.5)),
        ("weight_decay", -1e-3),
        ("diagonal_eps", -1e-10),
        ("matrix_eps", -1e-6),
        ("block_size", 0),
        ("preconditioning_compute_steps", 0),
        ("statistics_compute_steps", 0),
        ("start_preconditioning_step", 0),
        ("inverse_exponent_override", -1),
        ("graft_type", 5),
        ("graft_type", "adam"),
        ("pre_conditioner_type", 3),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(argument, value):
    with pytest.raises(ValueError, match=argument):
        optimizers.distributed_shampoo(**{argument: value})


def test_graft_and_preconditioner_types_by_name_are_the_enum_values():
    from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting as grafting

    params = initial_params(jnp.float64)
    grads = jax.grad(loss)(params)
    by_name = optimizers.distributed_shampoo(**HPARAMS, graft_type="rmsprop")
    by_enum = optimizers.distributed_shampoo(**HPARAMS, graft_type=grafting.RMSPROP)
    a, _ = by_name.update(grads, by_name.init(params), params)
    b, _ = by_enum.update(grads, by_enum.init(params), params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert OPTIMIZERS["distributed_shampoo"].factory is optimizers.distributed_shampoo
