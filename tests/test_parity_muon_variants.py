"""Per-step parity of Muon's relatives with their references.

AdaMuon, NorMuon, SCION, SCIONLight and SPlus against pytorch_optimizer's classes of the
same names; Muon with the Polar Express schedules against optax.contrib.muon given the
same coefficients, whose values and whose use in the iterations are checked against
pytorch_optimizer's. Everything in float64 on both sides, STEPS steps from
tests/test_parity.py's params (a 3 x 4 matrix, a vector and a scalar) and on a tall
matrix beside a rank-3 leaf; then each rule in float32 against its own float64 steps.

pytorch_optimizer runs its Newton-Schulz iterations in bfloat16 and SPlus's
eigendecompositions in float32 whatever the parameters' dtype; these tests run both in
float64 (the iterations' dtype argument set to float64, `Tensor.float` kept float64
during SPlus's step), so that what is compared is the rule, not bfloat16's rounding.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import test_parity_torch
from test_parity import initial_params, loss
from test_parity_torch import RTOL64, STEPS, assert_same_trajectory, ours

from optimizers import OPTIMIZERS, apply_updates
from optimizers.muon import NS_COEFFS_PRESETS, orthogonalize_via_newton_schulz
from optimizers.muon_groups import newton_schulz_schedule, orthogonalize
from optimizers.splus import splus_eval_params

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

# float64 on both sides, the same operations in another order (torch lerps where these
# rules average, decays the params in place before the step, stacks same-shaped matrices
# into one batched product): a few roundings of 1.1e-16 per step. RTOL64 (1e-10
# relative) holds them; measured over STEPS steps, every variant: at most 1.1e-11
# (adamuon), 8.4e-12 (normuon), 3.2e-12 (scion), 2.5e-12 (scion_light), 3.1e-12 (splus)
# on the first tree; 6.7e-12, 1.7e-12, 3.1e-12, 3.0e-12 and 1.8e-11 on the second.
#
# Every rule here takes steps of a fixed size whatever the gradient's (an orthogonal
# matrix, a sign, a unit-RMS vector), so once a leaf reaches its minimum it oscillates
# about it and the direction of each step turns on the sign of a near-zero gradient:
# there, any two implementations' last-bit differences double every few steps (adamuon
# at learning rate 0.03 agrees to 3e-14 up to step 150 and differs by 3e-2 at step 300;
# scion_light with constraint=True at 1e-3 by 9e-9 at step 265, from its scalar's sign
# steps). The learning rates below keep the STEPS steps in the approach to the minimum,
# where the rounding differences stay below 2e-11.

# The modules that call pytorch_optimizer's Newton-Schulz iterations by name.
NEWTON_SCHULZ_CALLERS = (
    "pytorch_optimizer.optimizer.muon.base",
    "pytorch_optimizer.optimizer.muon.adamuon",
    "pytorch_optimizer.optimizer.muon.normuon",
    "pytorch_optimizer.optimizer.scion",
)


@pytest.fixture(autouse=True)
def float64_newton_schulz(monkeypatch):
    """pytorch_optimizer's iterations in float64 instead of bfloat16."""
    from pytorch_optimizer.optimizer.utils import matrix

    iterations = functools.partial(matrix.zero_power_via_newton_schulz_5, dtype=torch.float64)
    for name in NEWTON_SCHULZ_CALLERS:
        monkeypatch.setattr(
            importlib.import_module(name), "zero_power_via_newton_schulz_5", iterations
        )


def _groups(tensors):
    """pytorch_optimizer's Muon groups: every tensor of rank >= 2 orthogonalised, the
    others in the AdamW group, as the rules here split the leaves."""
    matrices = [t for t in tensors if t.ndim >= 2]
    others = [t for t in tensors if t.ndim < 2]
    groups = [{"params": matrices, "use_muon": True}]
    return groups + ([{"params": others, "use_muon": False}] if others else [])


def _adamuon(tensors, learning_rate, b1=0.9, b2=0.95, adamw_b1=0.9, adamw_b2=0.999, **kw):
    renamed = {"adamw_learning_rate": "adamw_lr", "adamw_weight_decay": "adamw_wd"}
    kw = {renamed.get(k, k): v for k, v in kw.items()}
    return pytorch_optimizer.AdaMuon(
        _groups(tensors),
        lr=learning_rate,
        betas=(b1, b2),
        adamw_betas=(adamw_b1, adamw_b2),
        **kw,
    )


def _normuon(tensors, learning_rate, adamw_b1=0.9, adamw_b2=0.95, **kw):
    renamed = {"adamw_learning_rate": "adamw_lr", "adamw_weight_decay": "adamw_wd"}
    kw = {renamed.get(k, k): v for k, v in kw.items()}
    return pytorch_optimizer.NorMuon(
        _groups(tensors), lr=learning_rate, adamw_betas=(adamw_b1, adamw_b2), **kw
    )


def _scion(tensors, learning_rate, alpha=0.1, **kw):
    return pytorch_optimizer.SCION(tensors, lr=learning_rate, momentum=alpha, **kw)


class _Accumulating:
    """An optimizer whose gradients are summed into `.grad` as backward passes sum them:
    each step's gradient is added to what the last step left in the buffer."""

    def __init__(self, optimizer, tensors):
        self.optimizer, self.tensors, self.buffers = optimizer, tensors, None

    def step(self):
        if self.buffers is not None:
            for tensor, buffer in zip(self.tensors, self.buffers, strict=True):
                tensor.grad = buffer.add_(tensor.grad)
        self.optimizer.step()
        self.buffers = [tensor.grad for tensor in self.tensors]


def _scion_light(tensors, learning_rate, alpha=0.1, **kw):
    light = pytorch_optimizer.SCIONLight(tensors, lr=learning_rate, momentum=alpha, **kw)
    return _Accumulating(light, tensors)


class _Float64SPlus:
    """pytorch_optimizer's SPlus with its eigendecompositions in the params' float64:
    `Tensor.float` leaves a float64 tensor as it is while a step runs."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self):
        to_float = torch.Tensor.float
        torch.Tensor.float = lambda tensor: (
            tensor if tensor.dtype == torch.float64 else to_float(tensor)
        )
        try:
            self.optimizer.step()
        finally:
            torch.Tensor.float = to_float

    def eval(self):
        self.optimizer.eval()


def _splus(tensors, learning_rate, b1=0.9, b2=0.999, **kw):
    return _Float64SPlus(pytorch_optimizer.SPlus(tensors, lr=learning_rate, betas=(b1, b2), **kw))


# Each rule: its reference, non-default hyperparameters, and one variant per flag.
CASES = {
    "adamuon": (
        _adamuon,
        {
            "learning_rate": 0.005,
            "b1": 0.8,
            "b2": 0.9,
            "weight_decay": 1e-2,
            "ns_steps": 6,
            "adamw_learning_rate": 0.02,
            "adamw_b1": 0.85,
            "adamw_b2": 0.99,
            "adamw_weight_decay": 1e-3,
            # Near the minimum an Adam-like step with a tiny eps is sign-like, and there
            # the last-bit differences between the libraries grow without bound; 1e-3
            # keeps the division by the second moment smooth (both sides alike).
            "eps": 1e-3,
        },
        (
            {"weight_decouple": False},
            {"use_adjusted_lr": False},
            {"ns_coeffs": "polar_express", "ns_steps": 8},
        ),
    ),
    "normuon": (
        _normuon,
        {
            "learning_rate": 0.005,
            "momentum": 0.8,
            "beta2": 0.9,
            "weight_decay": 1e-2,
            "ns_steps": 4,
            "ns_coeffs": "quintic",
            "adamw_learning_rate": 0.02,
            "adamw_b1": 0.85,
            "adamw_b2": 0.99,
            "adamw_weight_decay": 1e-3,
            "adamw_eps": 1e-3,
            "eps": 1e-3,
        },
        (
            {"nesterov": False},
            {"update_scale": "match_rms"},
            {"use_adjusted_lr": True},
            {"weight_decouple": False},
        ),
    ),
    "scion": (
        _scion,
        {"learning_rate": 1e-3, "alpha": 0.3, "scale": 2.0, "weight_decay": 0.05},
        ({"constraint": True}, {"weight_decouple": False}),
    ),
    "scion_light": (
        _scion_light,
        {"learning_rate": 1e-3, "alpha": 0.3, "scale": 2.0, "weight_decay": 0.05},
        ({"constraint": True, "learning_rate": 5e-4}, {"weight_decouple": False}),
    ),
    "splus": (
        _splus,
        {
            "learning_rate": 0.03,
            "b1": 0.8,
            "b2": 0.99,
            "weight_decay": 0.05,
            "ema_rate": 0.9,
            "inverse_steps": 7,
            "nonstandard_constant": 0.05,
        },
        ({"weight_decouple": False}, {"fixed_decay": True}, {"max_dim": 4}),
    ),
}

VARIANTS = [
    pytest.param(name, variant, id=f"{name}-{'+'.join(variant) or 'default'}")
    for name, (_, _, variants) in CASES.items()
    for variant in ({}, *variants)
]


@pytest.mark.parametrize(("name", "variant"), VARIANTS)
def test_per_step_parity_with_pytorch_optimizer(name, variant):
    reference, hparams, _ = CASES[name]
    assert_same_trajectory(name, reference, {**hparams, **variant}, rtol=RTOL64)


def _other_params(dtype, name=None):
    """A tall matrix and a rank-3 leaf (a 3 x (2 x 2) matrix to these rules; a sign step
    for SPlus). SPlus's is 4 x 3: a 5 x 3 gradient leaves its 5 x 5 left statistic a
    two-dimensional null space at the first refresh, in which each eigensolver picks its
    own basis, and the sign of the momentum's (zero up to rounding) components there."""
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    return {
        "cube": jax.random.normal(keys[1], (3, 2, 2), jnp.float32).astype(dtype),
        "tall": jax.random.normal(keys[0], (5, 3), jnp.float32).astype(dtype),
    }


def _other_loss(params):
    return sum(
        jnp.sum(jnp.logaddexp(p - 0.5, 0.5 - p) + 0.1 * p**2) for p in jax.tree.leaves(params)
    )


@pytest.mark.parametrize("name", list(CASES))
def test_per_step_parity_on_a_tall_matrix_and_a_rank_3_leaf(name, monkeypatch):
    """The transposed branch of the iterations and the matrix view of a rank-3 leaf."""
    reference, hparams, _ = CASES[name]
    params = _other_params
    if name == "splus":

        def params(dtype):
            return {k: v[:4] if k == "tall" else v for k, v in _other_params(dtype).items()}

    monkeypatch.setattr(test_parity_torch, "initial_params", params)
    monkeypatch.setattr(test_parity_torch, "loss", _other_loss)
    assert_same_trajectory(name, reference, hparams, rtol=RTOL64)


# float32 against the same rule's float64 steps, at the learning rates above (the
# approach to the minimum, where rounding differences are not amplified): each step
# rounds to 6e-8 relative, the Newton-Schulz products, norms and eigenvectors to about
# 1e-6. Measured over STEPS steps, in absolute terms on params of order one: at most
# 6.3e-7 (adamuon), 5.2e-7 (normuon), 1.0e-6 (scion), 9.2e-7 (scion_light), 5.9e-7
# (splus), 2.5e-6 (muon_polar_express, 1.3e-6 for the safer schedule). FLOAT32_ATOL is
# four times the largest; a state kept in the wrong dtype, a lost cast or a constant
# rounded to bfloat16 exceeds it.
FLOAT32_ATOL = 1e-5


@pytest.mark.parametrize("name", [*CASES, "muon_polar_express", "muon_polar_express_safer"])
def test_float32_follows_the_float64_steps(name):
    hparams = CASES[name][1] if name in CASES else {"learning_rate": 0.005}
    hparams = {**OPTIMIZERS[name].hparams, **hparams}
    low, high = (
        jax.tree.leaves(ours(name, initial_params(dtype), **hparams))
        for dtype in (jnp.float32, jnp.float64)
    )
    for a, b in zip(low, high, strict=True):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=0, atol=FLOAT32_ATOL)


# --- Polar Express ---------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["polar_express", "polar_express_safer", "quintic", "original"])
def test_the_coefficients_are_pytorch_optimizers(preset):
    from pytorch_optimizer.optimizer.utils.matrix import NS_COEFFICIENTS

    expected = np.asarray(NS_COEFFICIENTS[preset])
    np.testing.assert_array_equal(newton_schulz_schedule(preset, len(expected)), expected)
    # The last triple repeats where a schedule has fewer rows than steps.
    np.testing.assert_array_equal(newton_schulz_schedule(preset, 10)[-1], expected[-1])


@pytest.mark.parametrize("preset", ["polar_express", "polar_express_safer", "quintic"])
@pytest.mark.parametrize("shape", [(3, 4), (7, 3), (4, 2, 3)])
@pytest.mark.parametrize("size", [1.0, 1e-9], ids=["unit", "below_the_floor"])
def test_the_iterations_are_pytorch_optimizers(preset, shape, size):
    """One orthogonalisation, on a wide, a tall and a rank-3 input, against
    zero_power_via_newton_schulz_5 run in float64; a matrix of norm below 1e-7 is divided
    by 1e-7, not by its norm."""
    from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

    x = size * np.array(jax.random.normal(jax.random.PRNGKey(3), shape, jnp.float64))
    expected = zero_power_via_newton_schulz_5(
        torch.from_numpy(x).reshape(shape[0], -1), num_steps=8, weights=preset, dtype=torch.float64
    ).numpy()
    got = orthogonalize(jnp.asarray(x), newton_schulz_schedule(preset, 8))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-14 * size)
    if size == 1.0:  # singular values near 1: a semi-orthogonal matrix
        singular = np.linalg.svd(np.asarray(got), compute_uv=False)
        assert np.all(np.abs(singular - 1) < 0.3), singular


# optax.contrib.muon with the same coefficients as rows: its scan over them is the
# iteration of optimizers.muon, and both are fed the same arguments.
POLAR_CASES = {
    "muon_polar_express": {
        "beta": 0.8,
        "eps": 1e-7,
        "weight_decay": 1e-3,
        "adam_b1": 0.8,
        "adam_b2": 0.99,
        "adam_eps_root": 1e-9,
        "adam_weight_decay": 1e-3,
    },
}
POLAR_VARIANTS = [
    pytest.param(name, preset, variant, id=f"{name}-{preset}-{'+'.join(variant) or 'default'}")
    for name in POLAR_CASES
    for preset in ("polar_express", "polar_express_safer")
    for variant in ({}, {"nesterov": False}, {"adaptive": True}, {"consistent_rms": 0.2})
]


@pytest.mark.parametrize(("name", "preset", "variant"), POLAR_VARIANTS)
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
def test_polar_express_per_step_parity_with_optax(name, preset, variant, dtype):
    kwargs = {"learning_rate": 0.05, **POLAR_CASES[name], **variant}
    opt = OPTIMIZERS[name].factory(ns_coeffs=preset, **kwargs)
    reference = optax.contrib.muon(ns_coeffs=NS_COEFFS_PRESETS[preset], ns_steps=8, **kwargs)

    def run(opt, params):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(loss)(params), state, params)
            params = apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params, opt.init(params)), None, length=STEPS)[1]

    params = initial_params(dtype)
    got, expected = jax.jit(lambda p: (run(opt, p), run(reference, p)))(params)
    # The same iterations in the same order: bitwise equal in both dtypes on jax 0.10.2
    # and optax 0.2.8 (measured). RTOL64 in float64; in float32 2e-6 absolute on params of
    # order one (about 16 ulps), room for an XLA release that fuses the two otherwise.
    rtol, atol = (RTOL64, 1e-300) if dtype == jnp.float64 else (0, 2e-6)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
    moved = max(np.max(np.abs(leaf[-1] - leaf[0])) for leaf in jax.tree.leaves(got))
    assert moved > 1e-3


def test_polar_express_is_muon_with_the_schedule():
    """The rule's iteration is muon.py's, with the eight rows of the preset."""
    x = jax.random.normal(jax.random.PRNGKey(5), (3, 4), jnp.float64)
    rows = NS_COEFFS_PRESETS["polar_express"]
    a = orthogonalize_via_newton_schulz(x, rows, 8)
    b = orthogonalize_via_newton_schulz(x, NS_COEFFS_PRESETS["standard"], 8)
    assert not np.allclose(a, b, atol=1e-3), "the schedule changes the iteration"


# --- SPlus's evaluation point ----------------------------------------------------------


@pytest.mark.parametrize("variant", [{}, {"weight_decouple": False}])
def test_splus_evaluates_at_the_reference_average(variant):
    """splus_eval_params is the point pytorch_optimizer's SPlus.eval() swaps in."""
    steps = 30
    _, hparams, _ = CASES["splus"]
    kwargs = {**hparams, **variant}
    params = initial_params(jnp.float64)
    opt = OPTIMIZERS["splus"].factory(**kwargs)
    state, current = opt.init(params), params
    for _ in range(steps):
        updates, state = opt.update(jax.grad(loss)(current), state, current)
        current = apply_updates(current, updates)
    got = splus_eval_params(state, current)

    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.asarray(leaf), requires_grad=True) for leaf in leaves]
    reference = _splus(tensors, **kwargs)
    gradient = jax.jit(jax.grad(loss))
    for _ in range(steps):
        now = jax.tree.unflatten(treedef, [jnp.asarray(t.detach().numpy()) for t in tensors])
        for tensor, g in zip(tensors, jax.tree.leaves(gradient(now)), strict=True):
            tensor.grad = torch.from_numpy(np.array(g))
        reference.step()
    reference.eval()
    for a, t in zip(jax.tree.leaves(got), tensors, strict=True):
        np.testing.assert_allclose(np.asarray(a), t.detach().numpy(), rtol=RTOL64, atol=1e-300)
    assert not np.allclose(jax.tree.leaves(got)[0], jax.tree.leaves(current)[0], rtol=1e-3)
    assert np.all(splus_eval_params(opt.init(params), params)["w"] == params["w"])
