"""Per-step parity of Adam's recent relatives with their reference implementations.

Optional like tests/test_parity_torch.py: skipped without torch and pytorch-optimizer,
and, for APOLLO and schedule-free RAdam, without the authors' packages (apollo-torch,
schedulefree). Both sides start from the same params and take the gradient of
tests/test_parity.py's loss (computed by jax, in float64) at every step; the params
after each of STEPS steps are compared, in float64, with non-default hyperparameters
and every option each rule has. Each rule's float32 run is then compared with its own
float64 run.

References: pytorch-optimizer's Grams, Tiger, CAME, AdamC, AdamMini and Fira; the
authors' apollo-torch (APOLLOAdamW: pytorch-optimizer's APOLLO projects the scaled
update back to low rank, which the paper's APOLLO does not) and schedulefree
(RAdamScheduleFree: pytorch-optimizer's ScheduleFreeRAdam steps by 1, not by the
learning rate, in the unrectified phase when silent_sgd_phase=False).

Tolerance: test_parity_torch's RTOL64 (1e-10 relative) for every float64 comparison.
Both sides compute in float64 with the same operations in slightly different orders
(torch's lerp for the moments, the decay as a multiplication of the params, norms and
means summed in other orders), a few roundings of 1.1e-16 per step. Measured over the
300 steps: at most 2e-11 (grams), 4e-12 (tiger), 2e-12 (apollo), 1.3e-12 (schedule-free
RAdam), 8.5e-13 (fira), 3.8e-13 (adamc), 3.5e-13 (adam_mini), 3e-13 (came). Where a
rule's step stays the same size however small the gradient (sign-like), the runs are
chaotic near the minimum and these last-bit differences grow without bound, as for
mars in test_parity_torch: the hyperparameters below keep each run out of that regime
(the comments beside them say how far apart the defaults let the runs drift). A
changed constant in a rule (an eps doubled, a decay rate off by 1e-3, the limiter's
1.01) moves the trajectories by 1e-6 and more.
"""

import importlib
import importlib.util
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

from test_parity import initial_params, loss  # noqa: E402
from test_parity_torch import RTOL64, STEPS, assert_same_trajectory, ours, theirs  # noqa: E402

from optimizers import (  # noqa: E402
    adam_mini,
    apollo_gaussian,
    schedule_free_eval_params,
    schedule_free_radam,
)


def variant_id(variant):
    return "+".join(f"{k}={v}" for k, v in variant.items()) or "default"


def with_extra_leaves(dtype):
    """initial_params plus a tall 6 x 3 matrix and a 2 x 3 x 4 tensor (the loss sums over
    every leaf, coupling w and b only)."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    return initial_params(dtype) | {
        "t": jax.random.normal(k1, (6, 3), jnp.float32).astype(dtype),
        "u": jax.random.normal(k2, (2, 3, 4), jnp.float32).astype(dtype),
    }


def assert_same_on(params, name, reference, kwargs, rtol=RTOL64):
    """assert_same_trajectory on other params than initial_params."""
    got, expected = ours(name, params, **kwargs), theirs(reference, params, **kwargs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert np.all(np.isfinite(b)), "reference trajectory is not finite"
        np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=1e-300)


def float32_error(name, kwargs, make=initial_params):
    """The largest |float32 - float64| over every step and entry of our own trajectories
    from make(dtype), relative to the largest |entry| of the float64 one."""
    wide, narrow = ours(name, make(jnp.float64), **kwargs), ours(name, make(jnp.float32), **kwargs)
    for leaf in jax.tree.leaves(narrow):
        assert leaf.dtype == jnp.float32
    errors = [
        np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b)))
        for a, b in zip(jax.tree.leaves(narrow), jax.tree.leaves(wide), strict=True)
    ]
    return max(errors) / max(np.max(np.abs(np.asarray(b))) for b in jax.tree.leaves(wide))


def betas(kw, names=("b1", "b2")):
    """Our b1, b2 (, b3) popped from kw as the reference's `betas` tuple."""
    return tuple(kw.pop(name) for name in names)


# ---------------------------------------------------------------------------------------
# Grams, Tiger, CAME, AdamC: pytorch-optimizer, the same arguments by other names.


def grams_reference(params, learning_rate, **kw):
    return pytorch_optimizer.Grams(params, lr=learning_rate, betas=betas(kw), **kw)


def tiger_reference(params, learning_rate, **kw):
    return pytorch_optimizer.Tiger(params, lr=learning_rate, **kw)


def came_reference(params, learning_rate, **kw):
    return pytorch_optimizer.CAME(
        params, lr=learning_rate, betas=betas(kw, ("b1", "b2", "b3")), **kw
    )


def adamc_reference(params, learning_rate, **kw):
    return pytorch_optimizer.AdamC(params, lr=learning_rate, betas=betas(kw), **kw)


CASES = {
    "grams": (
        grams_reference,
        # eps = 1e-3 bounds |mhat| / (sqrt(vhat) + eps) where the gradient vanishes.
        {"learning_rate": 0.02, "b1": 0.8, "b2": 0.99, "eps": 1e-3, "weight_decay": 1e-2},
        [{}, {"weight_decay": 0.0}],
    ),
    "tiger": (
        # Sign descent ends in an oscillation of +-lr about the minimum: a small rate
        # keeps the iterate on its way down for most of the STEPS steps.
        tiger_reference,
        {"learning_rate": 3e-3, "beta": 0.8, "weight_decay": 0.05},
        [{}, {"weight_decouple": False}, {"fixed_decay": True}],
    ),
    "came": (
        came_reference,
        {
            "learning_rate": 0.02,
            "b1": 0.8,
            "b2": 0.95,
            "b3": 0.99,
            "weight_decay": 1e-2,
            "clip_threshold": 0.5,
            # Near the minimum the clipped step keeps its size, and the confidence
            # factor rsqrt(mean((u - m)^2) + eps2) grows as u and m agree: with the
            # default eps1 and eps2 last-bit differences between the libraries grow
            # from 1e-16 to 1e-2 relative by step 300 (from step ~70). eps1 = 1e-3 and
            # eps2 = 1e-2 bound both factors, and keep them below 3e-13.
            "eps1": 1e-3,
            "eps2": 1e-2,
        },
        [{}, {"ams_bound": True}, {"weight_decouple": False}, {"fixed_decay": True}],
    ),
    "adamc": (
        adamc_reference,
        # eps = 1e-2, as for mars in tests/test_parity_torch.py: near the minimum an
        # Adam step with a small eps is sign-like, and last-bit differences grow there
        # without bound (8e-7 relative by step 300 with eps = 1e-6; 4e-13 with 1e-2).
        {"learning_rate": 0.02, "b1": 0.8, "b2": 0.99, "eps": 1e-2, "weight_decay": 0.05},
        [{}, {"ams_bound": True}, {"weight_decouple": False}, {"fixed_decay": True}],
    ),
}
SIMPLE = [
    pytest.param(name, variant, id=f"{name}-{variant_id(variant)}")
    for name, (_, _, variants) in CASES.items()
    for variant in variants
]


@pytest.mark.parametrize(("name", "variant"), SIMPLE)
def test_per_step_parity_with_pytorch_optimizer(name, variant):
    reference, hparams, _ = CASES[name]
    assert_same_trajectory(name, reference, {**hparams, **variant})


@pytest.mark.parametrize("variant", [{}, {"ams_bound": True}], ids=variant_id)
def test_came_factors_the_last_two_axes_of_tall_and_rank_3_leaves(variant):
    reference, hparams, _ = CASES["came"]
    assert_same_on(with_extra_leaves(jnp.float64), "came", reference, {**hparams, **variant})


# AdamC's distinctive part: the decay of normalized leaves follows lr_t / lr_max under a
# schedule. The reference reads its learning rate from the param group, set before each
# step to the schedule's value at the number of steps taken (as a torch scheduler would).
PEAK = 0.05


def cosine(count):
    return 0.005 + 0.5 * (PEAK - 0.005) * (1 + jnp.cos(jnp.pi * count / STEPS))


class Scheduled:
    """A torch optimizer whose groups' learning rate is schedule(count) at each step."""

    def __init__(self, optimizer, schedule):
        self.optimizer, self.schedule, self.count = optimizer, schedule, 0

    def step(self):
        lr = float(self.schedule(jnp.asarray(self.count, jnp.int32)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.count += 1


def adamc_scheduled_reference(params, learning_rate, normalized, max_learning_rate, **kw):
    # Leaves in tree order: b, s, w; `normalized` marks b.
    assert list(normalized) == ["b", "s", "w"]
    flags = normalized.values()
    groups = [{"params": [p], "normalized": f} for p, f in zip(params, flags, strict=True)]
    optimizer = pytorch_optimizer.AdamC(groups, lr=max_learning_rate, betas=betas(kw), **kw)
    return Scheduled(optimizer, learning_rate)


@pytest.mark.parametrize(
    "variant", [{}, {"ams_bound": True}, {"fixed_decay": True}], ids=variant_id
)
def test_adamc_scales_the_decay_of_normalized_leaves_by_the_schedule(variant):
    _, hparams, _ = CASES["adamc"]
    kwargs = (
        hparams
        | variant
        | {
            "learning_rate": cosine,
            "max_learning_rate": PEAK,
            "normalized": {"b": True, "s": False, "w": False},
            "weight_decay": 0.5,
        }
    )
    assert_same_trajectory("adamc", adamc_scheduled_reference, kwargs)
    if variant.get("fixed_decay"):
        return  # the reference's fixed decay is wd * theta on every leaf: no correction
    # The correction moves the normalized leaf (and, through the loss, the others).
    plain = ours("adamc", initial_params(jnp.float64), **kwargs | {"normalized": None})
    corrected = ours("adamc", initial_params(jnp.float64), **kwargs)
    assert np.max(np.abs(np.asarray(plain["b"][-1] - corrected["b"][-1]))) > 1e-3


# ---------------------------------------------------------------------------------------
# Adam-mini: the reference partitions a torch module's parameters by their names.


def module_with(tensors, names):
    """A torch module whose parameters are `tensors` themselves, under dotted `names`.

    They are set in the modules' parameter tables as they are (not wrapped in new
    nn.Parameter objects), so that the gradients theirs() sets on them are the ones the
    reference reads.
    """
    root = torch.nn.Module()
    for tensor, name in zip(tensors, names, strict=True):
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module._parameters[leaf] = tensor
    assert {id(p) for p in root.parameters()} == {id(t) for t in tensors}
    return root


def adam_mini_reference(names, **model):
    def build(params, learning_rate, blocks, mask, **kw):
        del blocks, mask  # encoded in the names
        module = module_with(params, names)
        return pytorch_optimizer.AdamMini(module, lr=learning_rate, betas=betas(kw), **model, **kw)

    return build


class Float64Torch(types.ModuleType):
    """torch, with torch.float32 meaning float64: the reference's hard-coded float32
    state, in the float64 of the comparison."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


@pytest.fixture
def adam_mini_in_float64(monkeypatch):
    """The reference's moments in float64 (it keeps float32 moments of any params):
    torch.float32 read as float64 in its module, and float64 the default dtype (of
    its torch.zeros and torch.tensor(0.0) block statistics)."""
    module = sys.modules[pytorch_optimizer.AdamMini.__module__]
    monkeypatch.setattr(module, "torch", Float64Torch())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


# (names of the leaves b, s, w; the reference's model arguments; our blocks and mask).
ADAM_MINI = {
    # Every leaf one block; all decay.
    "leaves": (["bias", "scale", "weight"], {}, None, None),
    # The matrix as an embedding (Adam); the vector a norm layer's (no decay).
    "embedding": (
        ["norm.bias", "scale", "embed.weight"],
        {},
        {"b": "leaf", "s": "leaf", "w": "element"},
        {"b": False, "s": True, "w": True},
    ),
    # Query projection: num_embeds^2 / num_heads = 2-entry heads.
    "heads": (
        ["bias", "ln_f.scale", "q_proj.weight"],
        {"num_embeds": 2, "num_heads": 2},
        {"b": "leaf", "s": "leaf", "w": 2},
        {"b": True, "s": False, "w": True},
    ),
    # Fused query-key-value weight, 2 heads in 1 group: 1 * (2 + 2) blocks of 3 entries.
    "qkv": (
        ["bias", "scale", "attn.qkv.weight"],
        {"num_embeds": 4, "num_heads": 2, "num_query_groups": 1},
        {"b": "leaf", "s": "leaf", "w": 3},
        None,
    ),
}
ADAM_MINI_HPARAMS = {
    "learning_rate": 0.02,
    "b1": 0.8,
    "b2": 0.99,
    "eps": 1e-2,  # as AdamC's (the per-entry blocks are Adam)
    "weight_decay": 0.05,
}


@pytest.mark.parametrize("case", list(ADAM_MINI))
def test_adam_mini_per_step_parity_by_partition(case, adam_mini_in_float64):
    names, model, blocks, mask = ADAM_MINI[case]
    kwargs = ADAM_MINI_HPARAMS | {"blocks": blocks, "mask": mask}
    assert_same_trajectory("adam_mini", adam_mini_reference(names, **model), kwargs)


def test_adam_mini_blocks_must_divide_the_leaf():
    with pytest.raises(ValueError, match="divide"):
        adam_mini(0.1, blocks={"b": 3, "s": "leaf", "w": "leaf"}).init(initial_params(jnp.float64))


# ---------------------------------------------------------------------------------------
# APOLLO: the authors' apollo-torch, its random projections drawn by ours.

SEED_STRIDE = 1000


@pytest.fixture
def apollo_reference(monkeypatch):
    """apollo-torch's APOLLOAdamW, with our draws of the projections.

    The package's __init__ imports its 8-bit optimizers (bitsandbytes) and its modules
    transformers' require_version: apollo.py and its projector are loaded on their own,
    with a stand-in for require_version where transformers is not installed. Torch's
    generator, which the reference seeds per parameter (seed = its 1-based index, then
    next_seed at each refresh), cannot be reproduced in JAX: next_seed(s) is replaced by
    s + SEED_STRIDE, and stable_randn(shape, s) by apollo_gaussian(seed, i, k, shape) for
    the leaf at index i = s % SEED_STRIDE - 1 at its k = s // SEED_STRIDE-th refresh.
    Every other operation is the reference's own.
    """
    spec = importlib.util.find_spec("apollo_torch")
    if spec is None:
        pytest.skip("apollo-torch is not installed")
    before = set(sys.modules)
    package = types.ModuleType("apollo_torch")
    package.__path__ = list(spec.submodule_search_locations)
    monkeypatch.setitem(sys.modules, "apollo_torch", package)
    if importlib.util.find_spec("transformers") is None:
        versions = types.ModuleType("transformers.utils.versions")
        versions.require_version = lambda *args, **kwargs: None
        for name in ("transformers", "transformers.utils"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "transformers.utils.versions", versions)
    module = importlib.import_module("apollo_torch.apollo")
    projector = importlib.import_module("apollo_torch.random_projector")
    ours_seed = {}

    def stable_randn(shape, seed, device=None, dtype=torch.float32):
        assert dtype == torch.float32  # the reference draws in float32 for any params
        index, refresh = seed % SEED_STRIDE - 1, seed // SEED_STRIDE
        draw = apollo_gaussian(ours_seed["seed"], index, refresh, tuple(shape))
        return torch.from_numpy(np.array(draw))

    monkeypatch.setattr(projector, "stable_randn", stable_randn)
    monkeypatch.setattr(projector, "next_seed", lambda s, adv=None: s + SEED_STRIDE)

    def build(params, learning_rate, b1, b2, eps, weight_decay, rank, update_proj_gap,
              scale, scale_type, seed=0, scale_front=False, norm_growth_limiter=True,
              correct_bias=True):  # fmt: skip
        ours_seed["seed"] = seed
        projected = {
            "rank": rank,
            "proj": "random",
            "proj_type": "std",
            "update_proj_gap": update_proj_gap,
            "scale": scale,
            "scale_type": scale_type,
        }
        # One group per leaf, in tree order: the reference's 1-based parameter index is
        # the leaf's index plus 1.
        groups = [{"params": [p]} | (projected if p.dim() == 2 else {}) for p in params]
        return module.AdamW(
            groups,
            lr=learning_rate,
            betas=(b1, b2),
            eps=eps,
            weight_decay=weight_decay,
            correct_bias=correct_bias,
            scale_front=scale_front,
            disable_nl=not norm_growth_limiter,
        )

    yield build
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)


APOLLO_HPARAMS = {
    "learning_rate": 0.02,
    "b1": 0.8,
    "b2": 0.99,
    "eps": 1e-2,  # as AdamC's
    "weight_decay": 0.05,
    # P = draw / sqrt(rank) in float32: torch and XLA round a float32 division by
    # sqrt(2) differently (by 1 ulp: 7e-8 relative from the first step on); a rank
    # whose square root is a power of 2 makes the division exact on both sides.
    "rank": 4,
    "update_proj_gap": 7,
    "scale": 0.5,
    "scale_type": "channel",
    "seed": 3,
}
APOLLO_VARIANTS = [
    {},
    {"scale_type": "tensor"},
    {"scale_type": "tensor", "rank": 1, "scale": 16.0, "learning_rate": 2e-3},  # APOLLO-Mini
    {"scale_front": True},
    {"norm_growth_limiter": False},
    {"correct_bias": False},
    {"rank": 16},  # more than the matrix's dimensions
]


@pytest.mark.parametrize("variant", APOLLO_VARIANTS, ids=variant_id)
def test_apollo_per_step_parity_with_apollo_torch(variant, apollo_reference):
    assert_same_trajectory("apollo", apollo_reference, APOLLO_HPARAMS | variant)


@pytest.mark.parametrize("variant", [{}, {"scale_type": "tensor"}], ids=variant_id)
def test_apollo_on_tall_and_rank_3_leaves(variant, apollo_reference):
    # The tall matrix is projected from the right, the rank-3 leaf gets AdamW.
    params = with_extra_leaves(jnp.float64)
    assert_same_on(params, "apollo", apollo_reference, APOLLO_HPARAMS | variant)


# ---------------------------------------------------------------------------------------
# Fira: pytorch-optimizer, its SVD computed by jax's LAPACK on both sides.


@pytest.fixture
def same_svd(monkeypatch):
    """The reference's torch.linalg.svd computed by jax's LAPACK, as optimizers.fira calls
    it. The singular vectors of a matrix are defined up to sign (and, for repeated
    singular values, up to rotation), and two libraries pick them differently: the
    projection, and every later step, would then differ by far more than rounding."""

    def svd(a, full_matrices=True, **kwargs):
        u, s, vh = jnp.linalg.svd(jnp.asarray(a.numpy()), full_matrices=full_matrices)
        return tuple(torch.from_numpy(np.array(x)) for x in (u, s, vh))

    monkeypatch.setattr(torch.linalg, "svd", svd)


def fira_reference(params, learning_rate, b1, b2, eps, weight_decay, rank, update_proj_gap, scale):
    projected = {"rank": rank, "update_proj_gap": update_proj_gap, "scale": scale}
    groups = [
        {"params": [p]} | (projected | {"projection_type": "std"} if p.dim() == 2 else {})
        for p in params
    ]
    return pytorch_optimizer.Fira(groups, lr=learning_rate, betas=(b1, b2), eps=eps,
                                  weight_decay=weight_decay)  # fmt: skip


FIRA_HPARAMS = {
    "learning_rate": 0.02,
    "b1": 0.8,
    "b2": 0.99,
    "eps": 1e-2,  # as AdamC's (1.7e-7 relative by step 300 with eps = 1e-6)
    "weight_decay": 0.05,
    "rank": 2,
    "update_proj_gap": 7,
    "scale": 0.5,
}
FIRA_VARIANTS = [{}, {"rank": 1, "update_proj_gap": 1}, {"rank": 5}, {"scale": 1.0}]


@pytest.mark.parametrize("variant", FIRA_VARIANTS, ids=variant_id)
def test_fira_per_step_parity_with_the_same_svd(variant, same_svd):
    assert_same_trajectory("fira", fira_reference, FIRA_HPARAMS | variant)


def test_fira_on_tall_and_rank_3_leaves(same_svd):
    params = with_extra_leaves(jnp.float64)
    assert_same_on(params, "fira", fira_reference, FIRA_HPARAMS)


# ---------------------------------------------------------------------------------------
# Schedule-free RAdam: the authors' schedulefree.


def schedule_free_radam_reference(params, learning_rate, b1, b2, silent_sgd_phase=True, **kw):
    schedulefree = pytest.importorskip("schedulefree")
    optimizer = schedulefree.RAdamScheduleFree(
        params, lr=learning_rate, betas=(b1, b2), foreach=False,
        silent_sgd_phase=silent_sgd_phase, **kw,
    )  # fmt: skip
    optimizer.train()
    return optimizer


SF_RADAM_HPARAMS = {
    "learning_rate": 0.02,
    "b1": 0.8,
    "b2": 0.99,
    "eps": 1e-2,  # as AdamC's (3e-6 relative by step 300 with eps = 1e-6)
    "weight_decay": 1e-2,
    "r": 0.5,
    "weight_lr_power": 1.5,
}


@pytest.mark.parametrize(
    "variant", [{}, {"silent_sgd_phase": False}, {"r": 0.0, "weight_decay": 0.0}], ids=variant_id
)
def test_schedule_free_radam_per_step_parity_with_schedulefree(variant):
    pytest.importorskip("schedulefree")
    assert_same_trajectory(
        "schedule_free_radam", schedule_free_radam_reference, SF_RADAM_HPARAMS | variant
    )


def test_schedule_free_radam_evaluation_point_is_the_references_x():
    """After STEPS steps, schedule_free_eval_params gives the reference's eval() params."""
    pytest.importorskip("schedulefree")
    params = initial_params(jnp.float64)
    opt = schedule_free_radam(**SF_RADAM_HPARAMS)
    state, y = opt.init(params), params
    gradient = jax.jit(jax.grad(loss))
    for _ in range(STEPS):
        updates, state = opt.update(gradient(y), state, y)
        y = jax.tree.map(lambda p, u: p + u, y, updates)
    x = schedule_free_eval_params(state, y)
    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.asarray(leaf), requires_grad=True) for leaf in leaves]
    ref = schedule_free_radam_reference(tensors, **SF_RADAM_HPARAMS)
    for _ in range(STEPS):
        current = treedef.unflatten([jnp.asarray(t.detach().numpy()) for t in tensors])
        for tensor, g in zip(tensors, jax.tree.leaves(gradient(current)), strict=True):
            tensor.grad = torch.from_numpy(np.array(g))
        ref.step()
    ref.eval()
    for a, b in zip(jax.tree.leaves(x), tensors, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------
# float32 against float64.

# The float64 parity settings, run in float32 and compared with their own float64 run.
FLOAT32 = {
    # Grams steps along sign(g_t): at lr 0.02 the iterate reaches the minimum by step
    # ~250, where entries of g_t near 0 take different signs in the two precisions and
    # the runs part (1.8e-4 by step 300); at lr 0.01 it is still on its way down.
    "grams": CASES["grams"][1] | {"learning_rate": 0.01},
    "tiger": CASES["tiger"][1],
    "came": CASES["came"][1],
    "adamc": CASES["adamc"][1],
    "adam_mini": ADAM_MINI_HPARAMS | {"blocks": ADAM_MINI["heads"][2]},
    "apollo": APOLLO_HPARAMS,
    "fira": FIRA_HPARAMS,
    "schedule_free_radam": SF_RADAM_HPARAMS,
}
# |float32 - float64| over all steps, relative to the largest |param| (about 1.5):
# float32 rounds each operation to 6e-8 relative, and 300 steps of updates divided by
# adaptive denominators carry it forward. Measured: adamc 8.6e-8, came 1.6e-7,
# adam_mini 1.9e-7, apollo 1.9e-7, tiger 9.9e-7, grams 1.6e-6, schedule_free_radam
# 1.7e-6, fira 1.9e-6 (its float32 SVD sees float32 gradients). 1e-5 is 5 times the
# largest; state kept in bfloat16 or float16 instead would be 1e-3 or more off.
FLOAT32_RTOL = 1e-5


@pytest.mark.parametrize("name", list(FLOAT32))
def test_float32_follows_float64(name):
    error = float32_error(name, FLOAT32[name])
    assert error < FLOAT32_RTOL, f"{name}: {error:.2e}"
