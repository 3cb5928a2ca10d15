"""Apollo: a diagonal quasi-Newton method, its Hessian estimate fitted by a weak secant
condition at every step."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_unit_interval,
    increment,
    value_at,
)
from optimizers.registry import LR_GRID, MOMENTUM, WEIGHT_DECAY_OR_OFF, OptimizerSpec, Range
from optimizers.torch_style import advanced, check_arguments, initial_state, map_leaves

REBOUNDS = ("constant", "belief")
WEIGHT_DECAY_TYPES = ("l2", "decoupled", "stable")
# The floor of |B_t| with rebound="constant".
CONSTANT_REBOUND = 1e-2


class ApolloDqnState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # m: debiased moving average of the gradients
    hessian: Any  # B: the diagonal Hessian estimate
    direction: Any  # d: the last step's direction (theta_{t-1} - theta_t = lr * d)


def apollo_dqn(
    learning_rate: ScalarOrSchedule = 1e-2,
    init_lr: float | None = 1e-5,
    beta: float = 0.9,
    rebound: str = "constant",
    weight_decay: float = 0.0,
    weight_decay_type: str = "l2",
    warmup_steps: int = 500,
    eps: float = 1e-4,
) -> Optimizer:
    r"""Apollo (Ma, 2020): a diagonal quasi-Newton step, m_t / max(|B_t|, sigma), with
    the diagonal Hessian B_t updated by the weak secant condition along the last step.

    For step t with gradient g_t of a leaf (plus wd * theta_{t-1} with
    weight_decay_type="l2"), a_t = (1 - beta) / (1 - beta^t), eps' = 100 * eps with
    rebound="constant" (eps itself with "belief"), and d_{t-1} the last direction
    (d_0 = 0):

        delta_t = g_t - m_{t-1}
        m_t     = m_{t-1} + a_t * delta_t                  (the debiased EMA of g)
        s_t     = d_{t-1} / (||d_{t-1}||_4 + eps')
        q_t     = -a_t * <delta_t / (||d_{t-1}||_4 + eps'), s_t> - <B_{t-1}, s_t^2>
        B_t     = B_{t-1} + q_t * s_t^2
        D_t     = max(|B_t|, 0.01)                            (rebound="constant")
        D_t     = max(|B_t|, ||delta_t||_inf) + eps' / a_t     (rebound="belief")
        d_t     = m_t / D_t  (+ wd * theta_{t-1} with "decoupled", + wd / mean(D_t) *
                              theta_{t-1} with "stable")
        theta_t = theta_{t-1} - eta_t * d_t

    ||.||_4 and <.,.> run over the whole leaf. eta_t warms up linearly from init_lr
    (learning_rate / 1000 when None) to lr_t over warmup_steps steps:
    eta_t = (lr_t - init_lr) * t / warmup_steps + init_lr for t < warmup_steps, lr_t
    after. Arguments and defaults as `pytorch_optimizer.ApolloDQN` (lr named
    learning_rate), whose update this rule follows: the paper's step-size normalisation
    by the 4-norm of the last step, and its rebound.

    Reference: Ma, "Apollo: An Adaptive Parameter-wise Diagonal Quasi-Newton Method for
    Nonconvex Stochastic Optimization", arXiv:2009.13586, 2020.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("beta", beta)
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("eps", eps)
    if init_lr is not None:
        check_nonnegative("init_lr", init_lr)
    if rebound not in REBOUNDS:
        raise ValueError(f"rebound must be one of {REBOUNDS}, got {rebound!r}")
    if weight_decay_type not in WEIGHT_DECAY_TYPES:
        raise ValueError(
            f"weight_decay_type must be one of {WEIGHT_DECAY_TYPES}, got {weight_decay_type!r}"
        )
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    belief = rebound == "belief"
    epsilon = eps if belief else eps / 1e-2

    def init(params):
        return initial_state(ApolloDqnState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("apollo_dqn", state, ApolloDqnState, grads, params)
        t = increment(state.count)
        lr = value_at(learning_rate, state.count)
        start = value_at(learning_rate, 0) / 1000.0 if init_lr is None else init_lr
        current_lr = jnp.where(
            t >= warmup_steps, lr, (lr - start) * t / max(warmup_steps, 1) + start
        )
        alpha = (1.0 - beta) / (1.0 - beta**t)

        def leaf(g, m, b, d, p):
            dtype = p.dtype
            a = jnp.asarray(alpha, dtype)
            if weight_decay_type == "l2":
                g = g + weight_decay * p
            delta = g - m
            m = m + a * delta
            norm = jnp.sum(jnp.abs(d) ** 4) ** 0.25 + epsilon
            d = d / norm
            d_sq = d * d
            q = jnp.sum(delta / norm * d) * -a - jnp.sum(b * d_sq)
            b = b + d_sq * q
            if belief:
                denominator = jnp.maximum(jnp.abs(b), jnp.max(jnp.abs(delta))) + epsilon / a
            else:
                denominator = jnp.maximum(jnp.abs(b), CONSTANT_REBOUND)
            d = m / denominator
            if weight_decay_type == "decoupled":
                d = d + weight_decay * p
            elif weight_decay_type == "stable":
                d = d + weight_decay / jnp.mean(denominator) * p
            return -jnp.asarray(current_lr, dtype) * d, m, b, d

        updates, mu, hessian, direction = map_leaves(
            leaf, grads, state.mu, state.hessian, state.direction, params
        )
        return updates, advanced(state, count=t, mu=mu, hessian=hessian, direction=direction)

    return Optimizer(init, update)


REGISTRY = {
    "apollo_dqn": OptimizerSpec(
        apollo_dqn,
        LR_GRID,
        search_space={
            "beta": MOMENTUM,
            "eps": Range(1e-6, 1e-2),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 ApolloDQN",
    ),
}
__all__ = ["ApolloDqnState", "apollo_dqn"]
