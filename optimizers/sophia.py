"""Sophia: clipped momentum preconditioned by a moving estimate of the Hessian's diagonal."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_unit_interval,
    descend,
    increment,
    lowest_dtype,
    not_supported,
    require_params,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import (
    ADAM_SPACE,
    GRADIENT,
    HESSIAN_VECTOR_PRODUCT,
    LR_GRID,
    WEIGHT_DECAY,
    OptimizerSpec,
    Range,
)


class HutchinsonState(NamedTuple):
    key: jax.Array  # PRNG key of the next random signs


def hutchinson_estimator_diag_hessian(random_seed: jax.Array | None = None) -> Optimizer:
    r"""Hutchinson's estimate of diag(H): u * (H u) for a random sign vector u.

    E[u * (H u)] = diag(H) for independent Rademacher entries u_i = +-1. Each update
    draws u (one key per leaf, from `random_seed`, PRNGKey(0) by default) and computes
    the Hessian-vector product H u of `obj_fn` at the params by forward-over-reverse
    differentiation: call `update(grads, state, params, obj_fn=loss)`. As
    `optax.contrib.hutchinson_estimator_diag_hessian`.

    Reference: Hutchinson, "A stochastic estimator of the trace of the influence matrix
    for Laplacian smoothing splines", 1989.
    """

    def init(params):
        del params
        return HutchinsonState(key=jax.random.PRNGKey(0) if random_seed is None else random_seed)

    def update(grads, state, params=None, *, obj_fn=None, **extra):
        del grads, extra
        if params is None or obj_fn is None:
            raise ValueError("the Hessian estimate needs update(grads, state, params, obj_fn=f)")
        key, subkey = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(subkey, len(leaves))
        dtype = lowest_dtype(params)
        signs = [
            jax.random.rademacher(k, p.shape, jnp.float32).astype(dtype)
            for k, p in zip(keys, leaves, strict=True)
        ]
        signs = jax.tree.unflatten(treedef, signs)
        hessian_times_signs = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        return jax.tree.map(lambda hu, u: hu * u, hessian_times_signs, signs), HutchinsonState(key)

    return Optimizer(init, update)


# The default Hessian-diagonal estimate of `sophia`.
HUTCHINSON = hutchinson_estimator_diag_hessian()


class SophiaState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # momentum m, in mu_dtype when given
    nu: Any  # moving average h of the Hessian diagonal estimates
    hessian_fn_state: Any


# Steps between Hessian-diagonal estimates (the paper's and optax.contrib's k = 10).
UPDATE_INTERVAL = 10


def hessian_steps(state: SophiaState) -> jax.Array:
    """1 where the update that returned `state` estimated the Hessian diagonal (the
    update whose step count before it was a multiple of UPDATE_INTERVAL), else 0."""
    return ((state.count - 1) % UPDATE_INTERVAL == 0).astype(jnp.float32)


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    weight_decay_mask: Any | Callable | None = None,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = UPDATE_INTERVAL,
    hessian_diagonal_fn: Optimizer = HUTCHINSON,
    mu_dtype: Any | None = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> Optimizer:
    r"""Sophia (Liu et al., 2023): momentum divided by a clipped-below Hessian diagonal,
    then clipped element-wise.

    For step t = 1, 2, ... with gradient g_t, Hessian-diagonal estimate hhat_t and
    weight decay wd:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        d_t     = clip((m_t / (1 - b1^t)) / max(gamma * h_{t-1}, eps), -c, c)
        h_t     = b2 * h_{t-1} + (1 - b2) * hhat_t     (when t - 1 is a multiple of
                                                        update_interval; else h_{t-1})
        theta_t = theta_{t-1} - lr_t * (d_t + wd * theta_{t-1})

    c = clip_threshold (None: no clip). The step uses h_{t-1}, the estimate from
    before this step. `hessian_diagonal_fn` is an Optimizer whose update returns
    hhat (Hutchinson's estimator by default, which needs the loss: call
    `update(grads, state, params, obj_fn=loss)`). `weight_decay_mask` selects the
    leaves that decay. Same arguments and defaults as `optax.contrib.sophia`, except
    `verbose=True` (printing the share of unclipped entries), not supported.

    Reference: Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training", ICLR 2024 (arXiv:2305.14342).
    """
    not_supported("verbose", verbose, False)
    del print_win_rate_every_n_steps  # used only with verbose=True
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("gamma", gamma)
    check_nonnegative("clip_threshold", clip_threshold)
    if isinstance(update_interval, int) and update_interval < 1:
        raise ValueError(f"update_interval must be >= 1, got {update_interval!r}")

    def init(params):
        return SophiaState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like(params, mu_dtype),
            nu=zeros_like(params),
            hessian_fn_state=hessian_diagonal_fn.init(params),
        )

    def update(grads, state, params=None, **extra):
        require_params("sophia", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        correction1 = 1 - b1**t
        direction = jax.tree.map(
            lambda m, h: (m / correction1.astype(m.dtype)) / jnp.maximum(gamma * h, eps),
            mu,
            state.nu,
        )
        if clip_threshold is not None:
            direction = jax.tree.map(
                lambda d: jnp.clip(d, -clip_threshold, clip_threshold), direction
            )

        def refresh(hessian_fn_state, nu):
            estimate, hessian_fn_state = hessian_diagonal_fn.update(
                grads, hessian_fn_state, params, **extra
            )
            return hessian_fn_state, cast_like(update_moment(estimate, nu, b2, 1), nu)

        hessian_fn_state, nu = jax.lax.cond(
            state.count % update_interval == 0,
            refresh,
            lambda hessian_fn_state, nu: (hessian_fn_state, nu),
            state.hessian_fn_state,
            state.nu,
        )
        direction = with_weight_decay(
            direction, params, weight_decay, state.count, weight_decay_mask
        )
        new_state = SophiaState(
            count=t, mu=cast_like(mu, state.mu), nu=nu, hessian_fn_state=hessian_fn_state
        )
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    # The paper's step is clipped to lr per coordinate; it uses 2e-4 to 6e-4 for GPT-2,
    # about Adam's; the default grid covers it. A Hessian-vector product (counted as two
    # gradients) every UPDATE_INTERVAL steps, counted at the step that makes it, from the
    # first. gamma scales the Hessian (0.01 to 0.05 in the paper, as rho).
    "sophia": OptimizerSpec(
        sophia,
        LR_GRID,
        needs_loss=True,
        gradient_evaluations=lambda state, dim: (
            GRADIENT + HESSIAN_VECTOR_PRODUCT * hessian_steps(state)
        ),
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY, "gamma": Range(1e-3, 1e-1)},
        default_learning_rate=1e-4,  # the paper's code (Liu et al. 2023)
        reference="optax.contrib 0.2.8 sophia",
    ),
}
__all__ = ["HutchinsonState", "SophiaState", "hutchinson_estimator_diag_hessian", "sophia"]
