"""Per-step parity of rules optax lacks with their `pytorch_optimizer` counterparts.

Optional: needs the `reference` extra (a CPU build of torch and pytorch-optimizer),
and is skipped without it. Both sides start from tests/test_parity.py's params and
take the gradient of its loss (computed by jax, in float64) at every step; the
parameters after each of STEPS steps are compared.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_parity import initial_params, loss

from optimizers import OPTIMIZERS, apply_updates

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 300
# float64 on both sides, the same operations in a slightly different order (torch
# multiplies the params by 1 - lr * wd, then adds -lr * d; ours adds -lr * d - lr * wd *
# theta): a few roundings of 1.1e-16 per step, and 1e-10 relative leaves room for 300
# (measured: 6e-13 at most).
RTOL64 = 1e-10


@dataclass(frozen=True)
class TorchCase:
    """How to check one registered rule against pytorch_optimizer."""

    # pytorch_optimizer's side: (list of torch params, **our keyword arguments) -> optimizer.
    reference: Callable[..., Any]
    hparams: dict[str, Any] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ()


def _mars(params, learning_rate, learning_rate_1d=3e-3, **kw):
    return pytorch_optimizer.MARS(params, lr=learning_rate, lr_1d=learning_rate_1d, **kw)


CASES = {
    "mars": TorchCase(
        _mars,
        {
            "betas": (0.9, 0.95),
            "gamma": 0.05,
            "learning_rate_1d": 0.01,
            "betas_1d": (0.8, 0.9),
            "weight_decay": 1e-3,
            "weight_decay_1d": 1e-2,
            # Near the minimum an Adam-like step with a tiny eps is sign-like, and there
            # the last-bit differences between the two libraries grow without bound;
            # eps = 1e-2 keeps the step linear in the momentum there (both sides alike).
            "eps": 1e-2,
        },
        variants=({"optimize_1d": True}, {"mars_type": "lion"}, {"fixed_decay": True}),
    ),
    "shampoo": TorchCase(
        lambda params, learning_rate, **kw: pytorch_optimizer.Shampoo(
            params, lr=learning_rate, **kw
        ),
        {
            "momentum": 0.5,
            "weight_decay": 1e-3,
            # The two libraries' SVDs give an eigenvalue near matrix_eps to about
            # 1e-16 * ||H|| / matrix_eps relative, which the inverse roots then carry
            # into every step: 0.1 keeps that near 1e-14 (1e-4 lets it reach 1e-4).
            "matrix_eps": 0.1,
            "preconditioning_compute_steps": 3,
        },
        variants=({"weight_decouple": True}, {"weight_decouple": True, "fixed_decay": True}),
    ),
}


def ours(name, params, **kwargs):
    opt = OPTIMIZERS[name].factory(**kwargs)

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = apply_updates(params, updates)
        return (params, state), params

    return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=STEPS)[1])(params)


def theirs(reference, params, **kwargs):
    """The trajectory of pytorch_optimizer's `reference(tensors, **kwargs)` from `params`."""
    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.asarray(leaf), requires_grad=True) for leaf in leaves]
    opt = reference(tensors, **kwargs)
    gradient = jax.jit(jax.grad(loss))
    history = []
    for _ in range(STEPS):
        current = jax.tree.unflatten(treedef, [jnp.asarray(t.detach().numpy()) for t in tensors])
        for tensor, g in zip(tensors, jax.tree.leaves(gradient(current)), strict=True):
            tensor.grad = torch.from_numpy(np.array(g))
        opt.step()
        history.append([t.detach().numpy().copy() for t in tensors])
    return jax.tree.unflatten(treedef, [np.stack(column) for column in zip(*history, strict=True)])


CASE_VARIANTS = [
    pytest.param(name, variant, id=f"{name}-{'+'.join(variant) or 'default'}")
    for name, case in CASES.items()
    for variant in ({}, *case.variants)
]


def assert_same_trajectory(name, reference, kwargs, rtol=RTOL64):
    """Our registered rule `name` and pytorch_optimizer's `reference`, both built with
    `kwargs`, take the same parameters at each of STEPS steps in float64."""
    params = initial_params(jnp.float64)
    got, expected = ours(name, params, **kwargs), theirs(reference, params, **kwargs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert np.all(np.isfinite(b)), "reference trajectory is not finite"
        np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=1e-300)
    moved = max(np.max(np.abs(leaf[-1] - leaf[0])) for leaf in jax.tree.leaves(got))
    assert moved > 1e-3, f"{name} barely moves the parameters in {STEPS} steps"


@pytest.mark.parametrize(("name", "variant"), CASE_VARIANTS)
def test_per_step_parity_with_pytorch_optimizer(name, variant):
    kwargs = {"learning_rate": 0.05, **CASES[name].hparams, **variant}
    assert_same_trajectory(name, CASES[name].reference, kwargs)
