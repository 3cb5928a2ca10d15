"""Lookahead: k steps of an inner rule, then a pull back towards slow weights; and
Ranger, RAdam with gradient centralisation inside Lookahead."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.adam import adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    increment,
)
from optimizers.diffgrad import rectification
from optimizers.registry import (
    ADAM_SPACE,
    EPS,
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY_OR_OFF,
    OptimizerSpec,
    Range,
)
from optimizers.torch_style import (
    advanced,
    check_adam_arguments,
    check_arguments,
    coupled_gradient,
    decoupled_decay,
    float_copy,
    initial_state,
    learning_rate_at,
    lerp,
    map_leaves,
)

# How far each synchronisation moves the slow weights towards the fast ones.
ALPHA = Range(0.1, 0.9, "linear")


def check_lookahead(k, alpha) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    check_nonnegative("alpha", alpha)
    if isinstance(alpha, int | float) and alpha > 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")


class LookaheadState(NamedTuple):
    counter: jax.Array  # int32 inner steps since the last synchronisation
    inner: Any  # the inner rule's state
    slow: Any  # phi: the slow weights, theta_0 at first


def lookahead(
    optimizer: Optimizer, k: int = 5, alpha: float = 0.5, pullback_momentum: str = "none"
) -> Optimizer:
    r"""Lookahead (Zhang et al., 2019) around any rule: its k fast steps, then the fast
    weights pulled back towards the slow ones.

    With theta the fast weights (the params), phi the slow ones (phi = theta_0 at first)
    and d_t the inner rule's update at step t:

        theta'  = theta_{t-1} + d_t
        phi_t   = phi_{t-1} + alpha * (theta' - phi_{t-1}),   theta_t = phi_t
                                                   (every k-th step: t = k, 2k, ...)
        theta_t = theta'                           (the other steps; phi_t = phi_{t-1})

    The inner rule's state carries on through the synchronisations. Arguments and
    defaults as `pytorch_optimizer.Lookahead`; its pullback_momentum options other
    than "none" rewrite an SGD momentum buffer inside the inner rule's state, which a
    wrapper over any rule cannot reach, and are not supported.

    Reference: Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
    back", NeurIPS 2019.
    """
    check_lookahead(k, alpha)
    if pullback_momentum != "none":
        raise NotImplementedError(
            f"pullback_momentum={pullback_momentum!r} is not supported (only 'none')"
        )

    def init(params):
        return LookaheadState(
            counter=jnp.zeros([], jnp.int32), inner=optimizer.init(params), slow=float_copy(params)
        )

    def update(grads, state, params=None, **extra):
        check_arguments("lookahead", state, LookaheadState, grads, params)
        inner_updates, inner = optimizer.update(grads, state.inner, params, **extra)
        counter = increment(state.counter)
        synchronise = counter >= k

        def leaf(p, u, phi):
            fast = (p + u).astype(p.dtype)
            pulled = lerp(fast, phi, 1.0 - alpha)
            new = jnp.where(synchronise, pulled, fast)
            return new - p, jnp.where(synchronise, pulled, phi)

        updates, slow = map_leaves(leaf, params, inner_updates, state.slow)
        return updates, LookaheadState(
            counter=jnp.where(synchronise, 0, counter).astype(jnp.int32),
            inner=inner,
            slow=cast_like(slow, state.slow),
        )

    return Optimizer(init, update)


def lookahead_adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    k: int = 5,
    alpha: float = 0.5,
) -> Optimizer:
    r"""Lookahead (Zhang et al., 2019) around Adam, the pairing of the paper's experiments.

    Adam's fast steps (`adam`: m_t, v_t, theta' = theta_{t-1} - lr_t * mhat_t /
    (sqrt(vhat_t) + eps)), and every k-th step the slow weights phi move
    alpha of the way to the fast ones, which restart from there:

        phi_t = phi_{t-1} + alpha * (theta' - phi_{t-1}),   theta_t = phi_t

    Adam's moments carry on through the synchronisations. Its reference is
    `pytorch_optimizer.Lookahead` around `torch.optim.Adam`.

    Reference: Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
    back", NeurIPS 2019.
    """
    return lookahead(adam(learning_rate, b1, b2, eps), k=k, alpha=alpha)


class RangerState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m
    nu: Any  # second moment v
    slow: Any  # phi: the slow weights, theta_0 at first


def centralized(g, min_rank):
    """g minus its mean over every axis but the first, for leaves of rank > min_rank
    (gradient centralisation); other leaves as they are."""
    if g.ndim <= min_rank:
        return g
    return g - jnp.mean(g, axis=tuple(range(1, g.ndim)), keepdims=True)


def ranger(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.95,
    b2: float = 0.999,
    alpha: float = 0.5,
    k: int = 6,
    n_sma_threshold: int = 5,
    degenerated_to_sgd: bool = False,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    use_gc: bool = True,
    gc_conv_only: bool = False,
    eps: float = 1e-5,
) -> Optimizer:
    r"""Ranger (Wright, 2019): RAdam's rectified steps on centralised gradients, inside
    Lookahead.

    For step t with gradient g_t of a leaf, centralised where it has rank > 1 (rank > 3
    with gc_conv_only=True), g_t <- g_t - mean of g_t over all axes but the first (then
    plus wd * theta_{t-1} under coupled decay); with RAdam's rho_t and r_t (r_t
    including sqrt(1 - b2^t), as in `diffrgrad`):

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t^2
        theta'  = theta_{t-1} - lr_t * r_t / (1 - b1^t) * m_t / (sqrt(v_t) + eps)
                                                        (rho_t >= n_sma_threshold)
        theta'  = theta_{t-1} - lr_t * c / (1 - b1^t) * m_t           (otherwise)
        phi_t   = phi_{t-1} + alpha * (theta' - phi_{t-1}),   theta_t = phi_t
                                                        (t = k, 2k, ...; phi_0 = theta_0)

    and theta_t = theta' at the other steps. c is 1 with degenerated_to_sgd=True; with
    the default False, `pytorch_optimizer.Ranger`, which this rule follows (betas named
    b1, b2, lr named learning_rate), takes c = -1: its first steps (5 with the
    default b2) move along +m_t, a step up the gradient, where RAdam takes none. The
    rule keeps that behaviour so as to be the reference's. Decoupled decay (the
    default, weight_decouple=True) multiplies theta_{t-1} by 1 - lr_t * wd (1 - wd with
    fixed_decay) before the step.

    References: Wright, "Ranger: a synergistic optimizer", 2019
    (github.com/lessw2020/Ranger-Deep-Learning-Optimizer); Liu et al., "On the Variance
    of the Adaptive Learning Rate and Beyond", ICLR 2020; Zhang et al., "Lookahead
    Optimizer: k steps forward, 1 step back", NeurIPS 2019; Yong et al., "Gradient
    Centralization", ECCV 2020.
    """
    check_adam_arguments(learning_rate, b1, b2, weight_decay, eps)
    check_lookahead(k, alpha)
    min_rank = 3 if gc_conv_only else 1

    def init(params):
        return initial_state(RangerState, params, slow=float_copy(params))

    def update(grads, state, params=None, **extra):
        del extra
        check_arguments("ranger", state, RangerState, grads, params)
        t = increment(state.count)
        lr_t = learning_rate_at(learning_rate, state.count)
        r, adaptive = rectification(t, b2, n_sma_threshold, degenerated_to_sgd)
        step_size = lr_t * r / (1.0 - b1**t)
        synchronise = t % k == 0

        def leaf(g, m, v, phi, p):
            lr = jnp.asarray(lr_t, p.dtype)
            size = jnp.asarray(step_size, p.dtype)
            if use_gc:
                g = centralized(g, min_rank)
            g = coupled_gradient(g, p, weight_decay, weight_decouple)
            m = lerp(m, g, 1.0 - b1)
            v = b2 * v + (1.0 - b2) * (g * g)
            direction = jnp.where(adaptive, m / (jnp.sqrt(v) + eps), m)
            decay = decoupled_decay(p, lr, weight_decay, weight_decouple, fixed_decay)
            fast = (p + (decay - size * direction)).astype(p.dtype)
            pulled = lerp(phi, fast, alpha)
            new = jnp.where(synchronise, pulled, fast)
            return new - p, m, v, jnp.where(synchronise, pulled, phi)

        updates, mu, nu, slow = map_leaves(leaf, grads, state.mu, state.nu, state.slow, params)
        return updates, advanced(state, count=t, mu=mu, nu=nu, slow=slow)

    return Optimizer(init, update)


REGISTRY = {
    "lookahead_adam": OptimizerSpec(
        lookahead_adam,
        LR_GRID,
        search_space=ADAM_SPACE | {"alpha": ALPHA},
        reference="pytorch-optimizer 4.1.0 Lookahead(torch.optim.Adam)",
    ),
    # The reference's default (degenerated_to_sgd=False) steps up the gradient for the
    # first steps, before the rectification starts: the benchmark runs it as RAdam runs,
    # with SGD steps there.
    "ranger": OptimizerSpec(
        ranger,
        LR_GRID,
        hparams={"degenerated_to_sgd": True},
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "alpha": ALPHA,
            # Ranger's default eps is 1e-5, inside EPS's range.
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 Ranger",
    ),
}
__all__ = ["LookaheadState", "RangerState", "lookahead", "lookahead_adam", "ranger"]
