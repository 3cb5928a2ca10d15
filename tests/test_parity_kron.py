"""Per-step parity of `optimizers.kron` (PSGD Kron) with `pytorch_optimizer.Kron`.

Optional: needs the `reference` extra (a CPU build of torch and pytorch-optimizer),
and is skipped without it.

Matching the randomness. pytorch_optimizer's Kron draws, per step, one number from
NumPy's global generator (`np.random.random() < balance_prob`, the balancing of the
factors) and, on the steps that fit the preconditioner, one standard normal probe per
parameter (`torch.randn_like`). Our rule draws both from the PRNG key in its state, by
the split its docstring fixes. `ReplayedDraws` recomputes our draws from the same key
(the same splits, in this test) and hands them to the reference in place of its
generators: `np.random.random` (through the module's `np`, patched) and
`torch.randn_like`, each call checked against the shape and dtype it asks for.
Whether a step fits the preconditioner is no draw on either side: both count steps
against 1 / probability.

Matching the precision. pytorch_optimizer casts both operands of its triangular solves
to float32 whatever the preconditioner's dtype; ours solve in that dtype (float32 at
least). The float64 cases give the reference a solve in the operands' own dtype
(`solve_in_their_dtype`), the one difference that would otherwise cap the agreement at
float32's 6e-8; `test_float32_solves_of_the_reference_agree_to_their_precision` checks
the unpatched reference within a bound derived from that.
"""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from pytorch_optimizer.optimizer import psgd  # noqa: E402
from test_parity import initial_params, loss  # noqa: E402
from test_parity_torch import STEPS, assert_same_trajectory, ours, theirs  # noqa: E402

from optimizers import kron, precondition_update_prob_schedule  # noqa: E402

pytestmark = pytest.mark.reference

TORCH_DTYPES = {jnp.dtype(jnp.float32): torch.float32, jnp.dtype(jnp.float64): torch.float64}


class ReplayedDraws:
    """Our rule's draws from `key`, step by step, in the reference's generators' place.

    Per step: (next key, balance key, probe key) = split(key, 3); the balance draw is
    uniform(balance key, (), float32); the probe key splits into one key per leaf, for
    normal(leaf key, shape, dtype). The reference calls np.random.random first thing
    in every step (it starts the next step's draws here), then torch.randn_like for
    each parameter in order, on the steps that fit the preconditioner.
    """

    def __init__(self, key, shapes, dtypes):
        self.key, self.shapes, self.dtypes = jax.random.key(key), shapes, dtypes
        self.probes, self.used, self.steps = None, 0, 0

    def random(self):
        self.key, balance_key, probe_key = jax.random.split(self.key, 3)
        keys = jax.random.split(probe_key, len(self.shapes))
        self.probes = [
            np.asarray(jax.random.normal(k, s, d))
            for k, s, d in zip(keys, self.shapes, self.dtypes, strict=True)
        ]
        self.used, self.steps = 0, self.steps + 1
        return float(jax.random.uniform(balance_key, (), jnp.float32))

    def randn_like(self, tensor, dtype=None):
        probe = self.probes[self.used]
        self.used += 1
        assert tuple(tensor.shape) == probe.shape
        assert (dtype or tensor.dtype) == TORCH_DTYPES[probe.dtype]
        return torch.from_numpy(probe.copy())


def solve_in_their_dtype(x, a):
    """`psgd.solve_triangular_right` (X @ inv(A), A upper triangular) in the operands'
    dtype, float32 at least, as ours solves, instead of always in float32."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    rows = x.to(dtype).reshape(-1, x.size(-1))
    out = torch.linalg.solve_triangular(a.to(dtype), rows, upper=True, left=False)
    return out.reshape_as(x).to(x.dtype)


@pytest.fixture
def reference(monkeypatch):
    """pytorch_optimizer.Kron built from our keyword arguments, drawing our rule's numbers."""

    def build(tensors, learning_rate, key=0, **kw):
        for name in ("mu_dtype", "precondition_dtype"):
            if kw.get(name) is not None:
                kw[name] = TORCH_DTYPES[jnp.dtype(kw[name])]
        probability = kw.get("pre_conditioner_update_probability")
        if callable(probability):
            # Our schedule, evaluated as ours evaluates it (float32), as a torch tensor.
            kw["pre_conditioner_update_probability"] = lambda n: torch.tensor(
                np.asarray(probability(jnp.int32(n)))
            )
        precondition = kw.get("precondition_dtype", torch.float32)
        dtypes = [jnp.dtype(str(precondition or t.dtype).removeprefix("torch.")) for t in tensors]
        draws = ReplayedDraws(key, [tuple(t.shape) for t in tensors], dtypes)
        monkeypatch.setattr(torch, "randn_like", draws.randn_like)
        fake_numpy = types.SimpleNamespace(
            argsort=np.argsort, random=types.SimpleNamespace(random=draws.random)
        )
        monkeypatch.setattr(psgd, "np", fake_numpy)
        return pytorch_optimizer.Kron(tensors, lr=learning_rate, **kw)

    return build


# Non-default values of the numeric arguments; balance_prob 0.3 balances the factors on
# about 90 of the 300 steps. precondition_dtype None: the params' float64.
# learning_rate 5e-4, not the suite's 0.05: Kron's step is scale-free (the fit makes
# P h_t of order 1 whatever the size of the gradient, and the step's RMS is capped at
# 1.1), so once a leaf nears its minimum it hops around it at amplitude lr instead of
# converging, and there the dynamics are chaotic. Ours against ours, a start perturbed
# by 1e-15 ends 1e-2 away after 300 steps at lr 0.05 or 2e-3 (the scalar leaf, which
# reaches its minimum first, hops from step ~60 at 0.05), so any last-bit difference
# between the libraries would too. At 5e-4 every leaf is still descending after 300
# steps (the loss goes 17.9 -> 16.7; at 1e-3 the scalar leaf starts hopping near step
# 290) and the same perturbation stays below 1e-14 in every variant below (6e-12 with
# maximize, which climbs).
HPARAMS = {
    "learning_rate": 5e-4,
    "momentum": 0.8,
    "weight_decay": 1e-2,
    "balance_prob": 0.3,
    "precondition_dtype": None,
    "key": 3,
}
VARIANTS = [
    {},
    {"weight_decouple": False},
    {"momentum_into_precondition_update": False},
    {"momentum": 0.0},
    # Fits on every fourth step (1 / 0.3 = 3.33), then by a decaying schedule.
    {"pre_conditioner_update_probability": 0.3},
    {"pre_conditioner_update_probability": precondition_update_prob_schedule(0.9, 0.2, 0.02, 40)},
    # The 3 x 4 matrix: a diagonal factor for its longer axis, then for both; the vector
    # triangular; the axis of 4 over max_size_triangular.
    {"memory_save_mode": "one_diag"},
    {"memory_save_mode": "all_diag"},
    {"memory_save_mode": "smart_one_diag", "min_ndim_triangular": 1},
    {"max_size_triangular": 3},
    {"maximize": True, "weight_decay": 0.0},
    {"mu_dtype": jnp.float64, "precondition_dtype": jnp.float64, "key": 11},
]


# float64 on both sides with the same solves: per step a few roundings of 1.1e-16 differ
# (einsum's contraction order against our mode products, LAPACK's solve against XLA's),
# and the descent carries them along without growth. Measured: 2e-15 at most over the
# variants (7e-13 with maximize); the suite's 1e-10 (test_parity_torch.RTOL64) holds.
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "+".join(v) or "default")
def test_per_step_parity_with_pytorch_optimizer_kron(variant, reference, monkeypatch):
    monkeypatch.setattr(psgd, "solve_triangular_right", solve_in_their_dtype)
    assert_same_trajectory("kron", reference, {**HPARAMS, **variant})


# pytorch_optimizer's solves round to float32 (relative 6e-8) before the result goes back
# to float64: that perturbs b = Q^-T v, hence each fit of Q, by about 1e-7 relative, and
# the trajectory by about as much per fit, not growing (the fit pulls Q towards the same
# target either way). 1e-5 leaves a factor 100 over 300 fits and is still five orders
# below the effect of any real difference (a wrong step size or factor moves the
# trajectory at 1e-2). Measured: 5e-8.
RTOL_FLOAT32_SOLVE = 1e-5


def test_float32_solves_of_the_reference_agree_to_their_precision(reference):
    params = initial_params(jnp.float64)
    kwargs = {**HPARAMS, "precondition_dtype": jnp.float64}
    got, expected = ours("kron", params, **kwargs), theirs(reference, params, **kwargs)
    differences = [
        np.max(np.abs(np.asarray(a) - b) / np.abs(b))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True)
    ]
    assert max(differences) < RTOL_FLOAT32_SOLVE
    # ... and the float32 solves do make a difference: this is not the float64 case.
    assert max(differences) > 1e-12


def fitting_steps(probabilities):
    """The steps that fit the preconditioner, as both rules count them."""
    counter, fits = 0, []
    for step, probability in enumerate(probabilities):
        counter += 1
        if probability > 0 and counter >= 1 / probability:
            fits.append(step)
            counter = 0
    return fits


def test_the_update_probability_schedule_is_pytorch_optimizers():
    """The default schedule and another, in float32 (within an ulp of exp), and the steps
    they fit the preconditioner on, over 3000 steps."""
    n = np.arange(3000)
    for args in [(), (0.9, 0.2, 0.02, 40)]:
        got = np.asarray(precondition_update_prob_schedule(*args)(jnp.asarray(n, jnp.int32)))
        expected = np.array(
            [psgd.precondition_update_prob_schedule(*args)(int(i)).numpy() for i in n]
        )
        assert got.dtype == expected.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=2 * np.finfo(np.float32).eps)
        assert fitting_steps(got) == fitting_steps(expected)


def test_float32_params_decrease_the_loss_and_follow_float64():
    """float32 params, with the default float32 preconditioner: a finite trajectory that
    decreases the loss, within float32 roundings of float64 params with the same
    preconditioner (and so the same float32 probes: a float64 probe is another draw)."""
    trajectories = {
        dtype: ours("kron", initial_params(dtype), **{**HPARAMS, "precondition_dtype": jnp.float32})
        for dtype in (jnp.float32, jnp.float64)
    }
    losses = {
        dtype: np.asarray(jax.vmap(loss)(jax.tree.map(lambda x: x.astype(jnp.float64), path)))
        for dtype, path in trajectories.items()
    }
    start = float(loss(initial_params(jnp.float64)))
    for dtype, values in losses.items():
        assert values.shape == (STEPS,) and np.all(np.isfinite(values)), dtype
        assert values[-1] < start - 0.5, dtype
    # Each step rounds the params and momentum to float32 (6e-8 relative) and the step
    # itself is float32 on both sides; the descent carries those roundings along without
    # growth (a 6e-8 perturbation of the float64 start stays at 1e-7), so the params stay
    # within 1e-5 of the float64 ones (measured: 6e-7 absolute) and the loss within 1e-6
    # relative (measured: 6e-8).
    for a, b in zip(
        jax.tree.leaves(trajectories[jnp.float32]),
        jax.tree.leaves(trajectories[jnp.float64]),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(losses[jnp.float32], losses[jnp.float64], rtol=1e-6)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("learning_rate", -0.1),
        ("momentum", 1.0),
        ("weight_decay", -1e-3),
        ("pre_conditioner_update_probability", 1.5),
        ("balance_prob", -0.1),
        ("max_size_triangular", 0),
        ("min_ndim_triangular", -1),
        ("memory_save_mode", "two_diag"),
        ("mu_dtype", jnp.int32),
        ("precondition_dtype", "no dtype"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(argument, value):
    with pytest.raises(ValueError, match=argument):
        kron(**{argument: value})


def test_the_same_key_draws_the_same_steps_and_another_key_others():
    params = initial_params(jnp.float64)
    first, again = ours("kron", params, key=5), ours("kron", params, key=jax.random.key(5))
    other = ours("kron", params, key=6)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(
        np.array_equal(a, c)
        for a, c in zip(jax.tree.leaves(first), jax.tree.leaves(other), strict=True)
    )
