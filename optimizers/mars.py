"""MARS: AdamW on a variance-reduced gradient (a scaled recursive-momentum correction)."""

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
    increment,
    not_supported,
    require_params,
    value_at,
    zeros_like,
)
from optimizers.registry import EPS, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range

MARS_TYPES = ("adamw", "lion")
# Added to v_t under the square root, as pytorch_optimizer's MARS does.
EPS_ROOT = 1e-15


class MarsState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    exp_avg: Any  # m: moving average of the corrected gradients
    exp_avg_sq: Any  # v: moving average of their squares
    last_grad: Any  # g_{t-1}, for the correction


def mars(
    learning_rate: ScalarOrSchedule = 3e-3,
    betas: tuple[float, float] = (0.95, 0.99),
    gamma: float = 0.025,
    mars_type: str = "adamw",
    optimize_1d: bool = False,
    learning_rate_1d: ScalarOrSchedule = 3e-3,
    betas_1d: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.0,
    weight_decay_1d: float = 1e-1,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    ams_bound: bool = False,
    cautious: bool = False,
    eps: float = 1e-8,
    maximize: bool = False,
) -> Optimizer:
    r"""MARS (Yuan et al., 2024): a preconditioned step on the gradient corrected by the
    change of gradient, c_t = g_t + gamma * b1 / (1 - b1) * (g_t - g_{t-1}).

    For step t = 1, 2, ... with gradient g_t of a leaf of rank >= 2 (of every leaf with
    optimize_1d=True), (b1, b2) = betas, g_0 = 0 and weight decay wd:

        c_t     = g_t + gamma * b1 / (1 - b1) * (g_t - g_{t-1})
        c_t     = c_t / max(||c_t||, 1)                   (the leaf's 2-norm at most 1)
        m_t     = b1 * m_{t-1} + (1 - b1) * c_t
        v_t     = b2 * v_{t-1} + (1 - b2) * c_t^2
        d_t     = m_t / (1 - b1^t) / ((sqrt(v_t + 1e-15) + eps) / sqrt(1 - b2^t))  ("adamw")
        d_t     = sign(m_t)                                                   ("lion")
        theta_t = theta_{t-1} - lr_t * d_t - lr_t * wd * theta_{t-1}

    (- wd * theta_{t-1} with fixed_decay=True: a decay not scaled by the learning
    rate). Every other leaf takes AdamW's step on g_t itself (c_t = g_t, no norm cap)
    with betas_1d, learning_rate_1d and weight_decay_1d. Arguments and defaults as
    `pytorch_optimizer.MARS` (lr and lr_1d named learning_rate and learning_rate_1d),
    except mars_type="shampoo", weight_decouple=False, ams_bound, cautious and maximize,
    not supported.

    Reference: Yuan et al., "MARS: Unleashing the Power of Variance Reduction for
    Training Large Models", ICML 2025 (arXiv:2411.10438).
    """
    if mars_type not in MARS_TYPES:
        raise NotImplementedError(f"mars_type={mars_type!r} is not supported (only {MARS_TYPES})")
    not_supported("weight_decouple", weight_decouple, True)
    not_supported("ams_bound", ams_bound, False)
    not_supported("cautious", cautious, False)
    not_supported("maximize", maximize, False)
    beta1, beta2 = betas
    beta1_1d, beta2_1d = betas_1d
    check_nonnegative("learning_rate", learning_rate)
    check_nonnegative("learning_rate_1d", learning_rate_1d)
    for name, beta in (("betas", beta1), ("betas", beta2), ("betas_1d", beta1_1d)):
        check_unit_interval(name, beta)
    check_unit_interval("betas_1d", beta2_1d)
    check_nonnegative("gamma", gamma)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("weight_decay_1d", weight_decay_1d)
    check_nonnegative("eps", eps)

    def corrected(g, g_prev, p):
        """c_t for a leaf MARS corrects; g_t itself for one that takes plain AdamW."""
        if not (optimize_1d or p.ndim >= 2):
            return g
        c = g + gamma * (beta1 / (1.0 - beta1)) * (g - g_prev)
        return c / jnp.maximum(jnp.linalg.norm(c), 1.0)

    def init(params):
        return MarsState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            last_grad=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        del extra
        require_params("mars", params)
        check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        lr, lr_1d = value_at(learning_rate, state.count), value_at(learning_rate_1d, state.count)

        def leaf_update(g, g_prev, m, v, p):
            """(theta_t - theta_{t-1}, m_t, v_t) of one leaf."""
            mixed = optimize_1d or p.ndim >= 2
            b1, b2 = (beta1, beta2) if mixed else (beta1_1d, beta2_1d)
            rate = jnp.asarray(lr if mixed else lr_1d, p.dtype)
            wd = weight_decay if mixed else weight_decay_1d
            c = corrected(g, g_prev, p)
            m = m + (1 - b1) * (c - m)
            v = b2 * v + (1 - b2) * c * c
            if mars_type == "lion" and mixed:
                d = jnp.sign(m)
            else:
                denominator = (jnp.sqrt(v + EPS_ROOT) + eps) / jnp.sqrt(1 - b2**t) * (1 - b1**t)
                d = m / denominator.astype(m.dtype)
            decay = wd if fixed_decay else rate * wd
            return -(rate * d) - decay * p, m, v

        leaves, treedef = jax.tree.flatten(params)
        per_leaf = [
            leaf_update(*args)
            for args in zip(
                treedef.flatten_up_to(grads),
                treedef.flatten_up_to(state.last_grad),
                treedef.flatten_up_to(state.exp_avg),
                treedef.flatten_up_to(state.exp_avg_sq),
                leaves,
                strict=True,
            )
        ]
        updates, exp_avg, exp_avg_sq = (
            jax.tree.unflatten(treedef, [leaf[i] for leaf in per_leaf]) for i in range(3)
        )
        return updates, MarsState(
            count=t,
            exp_avg=cast_like(exp_avg, state.exp_avg),
            exp_avg_sq=cast_like(exp_avg_sq, state.exp_avg_sq),
            last_grad=cast_like(grads, state.last_grad),
        )

    return Optimizer(init, update)


REGISTRY = {
    # The paper trains GPT-2 with MARS-AdamW at 3e-3 to 6e-3 (Adam's range); the
    # benchmark corrects every leaf (optimize_1d=True) so that its one learning rate
    # applies throughout. gamma scales the gradient correction (0.025 in the paper).
    "mars": OptimizerSpec(
        mars,
        LR_GRID,
        hparams={"optimize_1d": True},
        search_space={
            "gamma": Range(1e-3, 1e-1),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
            "eps": EPS,
        },
        reference="pytorch-optimizer 4.1.0 MARS",
    ),
}
__all__ = ["MarsState", "mars"]
