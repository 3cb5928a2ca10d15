"""diffGrad: Adam whose momentum is damped where the gradient has stopped changing, and
its rectified form diffRGrad."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    increment,
)
from optimizers.registry import (
    EPS,
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
)
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
    second_moment,
)


class DiffgradState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v
    nu_max: Any  # running maximum of v (ams_bound; zeros and unused otherwise)
    previous_grad: Any  # g_{t-1} (g_0 = 0)


def rectification(t, b2, threshold, degenerated_to_sgd):
    """RAdam's (r_t, whether the adaptive step is taken) at step t, in
    pytorch_optimizer's form: r_t includes sqrt(1 - b2^t), and where the variance is
    not tractable (rho_t < threshold) r_t is 1 (degenerated_to_sgd) or -1."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    b2t = b2**t
    rho = rho_inf - 2 * t * b2t / (1.0 - b2t)
    adaptive = rho >= threshold
    safe = jnp.where(adaptive, rho, 5.0)
    r = jnp.sqrt(
        (1.0 - b2t) * (safe - 4) / (rho_inf - 4) * (safe - 2) / safe * rho_inf / (rho_inf - 2)
    )
    return jnp.where(adaptive, r, 1.0 if degenerated_to_sgd else -1.0), adaptive


def diffgrad(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    rectify: bool = False,
    n_sma_threshold: int = 5,
    degenerated_to_sgd: bool = True,
    ams_bound: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""diffGrad (Dubey et al., 2019): Adam with its momentum scaled, per coordinate, by
    the sigmoid of the change of gradient.

    For step t with gradient g_t (plus wd * theta_{t-1} under coupled decay), g_0 = 0:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        u_t     = max(u_{t-1}, v_t)   (ams_bound=True; u_t = v_t otherwise)
        xi_t    = sigmoid(|g_{t-1} - g_t|)                     (in [1/2, 1))
        theta_t = theta_{t-1} - lr_t * sqrt(1 - b2^t) / (1 - b1^t)
                                     * xi_t * m_t / (sqrt(u_t + 1e-15) + eps)

    With rectify=True (diffRGrad, see `diffrgrad`), sqrt(1 - b2^t) is RAdam's r_t
    (which includes it) while RAdam's rho_t >= n_sma_threshold; before that the step is
    lr_t / (1 - b1^t) * m_t with degenerated_to_sgd=True, and no step otherwise.
    Decoupled decay (the default, weight_decouple=True) multiplies theta_{t-1} by
    1 - lr_t * wd (1 - wd with fixed_decay) before the step.

    Follows `pytorch_optimizer.DiffGrad` (betas named b1, b2, lr named learning_rate):
    eps is added to the uncorrected sqrt(v_t), that is eps / sqrt(1 - b2^t) to the
    paper's sqrt(vhat_t).

    Reference: Dubey, Chakraborty, Roy, Mukherjee, Singh & Chaudhuri, "diffGrad: An
    Optimization Method for Convolutional Neural Networks", IEEE TNNLS 2019.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)

    def init(params):
        return initial_state(DiffgradState, params)

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("diffgrad", state, DiffgradState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        if rectify:
            r, adaptive = rectification(t, b2, n_sma_threshold, degenerated_to_sgd)
        else:
            r, adaptive = jnp.sqrt(1.0 - b2**t), True
        step_size = lr_t * r / (1.0 - b1**t)

        def leaf(g, m, v, v_max, g_prev, p):
            lr = jnp.asarray(lr_t, p.dtype)
            size = jnp.asarray(step_size, p.dtype)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - b1)
            v, v_max, denominator = second_moment(g, v, v_max, b2, ams_bound, eps)
            damped = jax.nn.sigmoid(jnp.abs(g_prev - g)) * m
            step = jnp.where(
                adaptive,
                -size * (damped / denominator),
                jnp.where(size > 0, -size * m, jnp.zeros_like(m)),
            )
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            return decay + step, m, v, v_max, g

        updates, mu, nu, nu_max, previous = map_leaves(
            leaf, grads, state.mu, state.nu, state.nu_max, state.previous_grad, params
        )
        return updates, advanced(
            state, count=t, mu=mu, nu=nu, nu_max=nu_max, previous_grad=previous
        )

    return Optimizer(init, update)


def diffrgrad(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    n_sma_threshold: int = 5,
    degenerated_to_sgd: bool = True,
    ams_bound: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""diffRGrad: `diffgrad` with RAdam's rectified step (rectify=True).

    With rho_inf = 2 / (1 - b2) - 1 and rho_t = rho_inf - 2 t b2^t / (1 - b2^t):

        r_t     = sqrt((1 - b2^t) (rho_t - 4)(rho_t - 2) rho_inf
                       / ((rho_inf - 4)(rho_inf - 2) rho_t))
        theta_t = theta_{t-1} - lr_t * r_t / (1 - b1^t) * xi_t * m_t / (sqrt(u_t + 1e-15) + eps)
                                                          (rho_t >= n_sma_threshold)
        theta_t = theta_{t-1} - lr_t / (1 - b1^t) * m_t   (otherwise, degenerated_to_sgd=True)

    and no step in the second case with degenerated_to_sgd=False; xi_t, m_t, u_t as in
    `diffgrad`. `pytorch_optimizer.DiffGrad(rectify=True)` is its reference.

    References: Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural
    Networks", IEEE TNNLS 2019; Liu et al., "On the Variance of the Adaptive Learning
    Rate and Beyond", ICLR 2020.
    """
    return diffgrad(
        learning_rate,
        b1,
        b2,
        weight_decay,
        weight_decouple,
        fixed_decay,
        rectify=True,
        n_sma_threshold=n_sma_threshold,
        degenerated_to_sgd=degenerated_to_sgd,
        ams_bound=ams_bound,
        eps=eps,
    )


SPACE = {
    "b1": MOMENTUM,
    "b2": SECOND_MOMENT,
    "eps": EPS,
    "weight_decay": WEIGHT_DECAY_OR_OFF,
}

REGISTRY = {
    "diffgrad": OptimizerSpec(
        diffgrad, LR_GRID, search_space=SPACE, reference="pytorch-optimizer 4.1.0 DiffGrad"
    ),
    "diffrgrad": OptimizerSpec(
        diffrgrad,
        LR_GRID,
        search_space=SPACE,
        reference="pytorch-optimizer 4.1.0 DiffGrad(rectify=True)",
    ),
}
__all__ = ["DiffgradState", "diffgrad", "diffrgrad"]
