"""Cautious optimizers: a rule's step kept only on the coordinates where it descends.

`cautious(rule)` wraps any rule whose updates are -lr_t * d_t (lr_t >= 0): the
coordinates where d_t and the gradient disagree in sign are zeroed, and the rest
rescaled so that the step keeps its size on average. The registered variants apply it
to AdamW, NAdamW, Lion, LaProp, MARS, ADOPT and AdEMAMix, each built and decayed as the
reference it is checked against: pytorch_optimizer's `cautious=True` where its class
has one, else timm's c-variants (cautious_adamw, cautious_nadamw).

The two references rescale differently: pytorch_optimizer by n / (k + 1) on a leaf of n
entries of which k are kept, timm by n / max(k, n / 1000). `cautious` follows
pytorch_optimizer by default, and the variants checked against timm take timm's.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from optimizers.adam import AdamState, check_adam, init_adam
from optimizers.adam import adam as plain_adam
from optimizers.ademamix import AdemamixState
from optimizers.adopt import adopt as plain_adopt
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_given,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    descend,
    increment,
    require_params,
    update_moment,
    value_at,
    with_weight_decay,
    zeros_like,
)
from optimizers.laprop import laprop as plain_laprop
from optimizers.laprop import shrink_after_step
from optimizers.lion import lion as plain_lion
from optimizers.mars import MARS_TYPES
from optimizers.mars import mars as plain_mars
from optimizers.registry import (
    ADAM_SPACE,
    EPS,
    LR_GRID,
    MOMENTUM,
    SECOND_MOMENT,
    WEIGHT_DECAY,
    WEIGHT_DECAY_OR_OFF,
    Choice,
    OptimizerSpec,
    Range,
    log_grid,
)

# How the kept coordinates are rescaled, for a leaf of n entries of which k are kept:
# "pytorch_optimizer": by n / (k + 1); "timm": by 1 / max(k / n, 1e-3); None: not at all.
RESCALES = ("pytorch_optimizer", "timm", None)
# timm's floor on the kept fraction, which bounds its rescaling by 1000.
TIMM_MIN_FRACTION = 1e-3


def caution(direction, grad, rescale="pytorch_optimizer"):
    r"""One leaf's direction d (the step is -lr * d) masked where it does not descend.

        keep = 1 where sign(d) = sign(g) != 0, else 0       (d * g > 0)
        d'   = d * keep * n / (sum(keep) + 1)               ("pytorch_optimizer")
        d'   = d * keep / max(mean(keep), 1e-3)             ("timm")
        d'   = d * keep                                     (None)

    The test is on the signs rather than the product d * g, which underflows to 0 for
    small enough entries of either. pytorch_optimizer's rescaling leaves a leaf of one
    kept entry (a scalar) half its step: n / (k + 1) = 1/2.
    """
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
    keep = (jnp.sign(direction) * jnp.sign(grad) > 0).astype(direction.dtype)
    if rescale == "pytorch_optimizer":
        keep = keep * (keep.size / (jnp.sum(keep) + 1))
    elif rescale == "timm":
        keep = keep / jnp.maximum(jnp.mean(keep), TIMM_MIN_FRACTION)
    return direction * keep


def cautious(rule: Optimizer, rescale="pytorch_optimizer") -> Optimizer:
    r"""`rule` made cautious (Liang et al., 2024): each leaf's step masked by `caution`.

    With the rule's updates u_t = -lr_t * d_t and the gradient g_t it was given:

        u'_t = -lr_t * caution(d_t, g_t)

    (the mask is computed from u_t itself, whose sign is that of -d_t for lr_t > 0).
    The rule must add no weight decay of its own: the references decay the params
    outside the mask (`decoupled_decay`, `coupled_decay`).

    Reference: Liang, Chen, Liu and Liu, "Cautious Optimizers: Improving Training with
    One Line of Code", 2024 (arXiv:2411.16085).
    """
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")

    def update(grads, state, params=None, **extra):
        updates, state = rule.update(grads, state, params, **extra)
        check_same_tree(grads, updates, "grads", "updates")
        return jax.tree.map(lambda u, g: -caution(-u, g, rescale), updates, grads), state

    return Optimizer(rule.init, update)


def decoupled_decay(
    rule: Optimizer,
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule,
    *,
    fixed_decay: bool = False,
    after_step: bool = False,
) -> Optimizer:
    r"""`rule` with the params shrunk by 1 - lr_t * wd (1 - wd with fixed_decay=True).

        theta_t = theta_{t-1} * (1 - lr_t * wd) + u_t         (before the step)
        theta_t = (theta_{t-1} + u_t) * (1 - lr_t * wd)       (after_step=True)

    lr_t and wd are read at the count of the rule's state (numbers or schedules).
    """
    check_nonnegative("weight_decay", weight_decay)

    def update(grads, state, params=None, **extra):
        updates, new_state = rule.update(grads, state, params, **extra)
        if isinstance(weight_decay, int | float) and weight_decay == 0:
            return updates, new_state
        require_params("weight decay", params)
        check_same_tree(updates, params, "updates", "params")
        wd = value_at(weight_decay, state.count)
        shrink = wd if fixed_decay else value_at(learning_rate, state.count) * wd
        if after_step:
            return shrink_after_step(updates, params, shrink), new_state
        decayed = jax.tree.map(lambda u, p: u - jnp.asarray(shrink, u.dtype) * p, updates, params)
        return decayed, new_state

    return Optimizer(rule.init, update)


def coupled_decay(rule: Optimizer, weight_decay: ScalarOrSchedule) -> Optimizer:
    """`rule` given the gradient of the loss plus wd/2 * ||theta||^2: g_t + wd * theta_{t-1}."""
    check_nonnegative("weight_decay", weight_decay)

    def update(grads, state, params=None, **extra):
        if not (isinstance(weight_decay, int | float) and weight_decay == 0):
            grads = with_weight_decay(grads, params, weight_decay, state.count)
        return rule.update(grads, state, params, **extra)

    return Optimizer(rule.init, update)


def weight_decayed(rule, learning_rate, weight_decay, weight_decouple, fixed_decay):
    """`rule` with the decay pytorch_optimizer's `apply_weight_decay` makes before a step:
    decoupled (weight_decouple=True, optionally fixed) or added to the gradient."""
    if weight_decouple:
        return decoupled_decay(rule, learning_rate, weight_decay, fixed_decay=fixed_decay)
    return coupled_decay(rule, weight_decay)


def cautious_adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
) -> Optimizer:
    r"""Cautious AdamW: AdamW's step masked by `caution` with timm's rescaling.

    With m_t, v_t, mhat_t and vhat_t as in `adam`:

        d_t     = caution(mhat_t / (sqrt(vhat_t) + eps), g_t, "timm")
        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * d_t

    Arguments and defaults as timm's `cadamw` (`AdamWLegacy(caution=True)`, betas
    named b1 and b2); its kept coordinates are rescaled by 1 / max(mean(keep), 1e-3),
    not pytorch_optimizer's n / (sum(keep) + 1).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Loshchilov & Hutter, "Decoupled Weight Decay
    Regularization", ICLR 2019.
    """
    check_given("learning_rate", learning_rate)
    rule = cautious(plain_adam(learning_rate, b1, b2, eps), rescale="timm")
    return decoupled_decay(rule, learning_rate, weight_decay)


def lookahead_adam(learning_rate: ScalarOrSchedule, b1: float, b2: float, eps: float):
    r"""timm's NAdamW step, without its decay: Adam on the look-ahead momentum.

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t,     v_t as in `adam`
        n_t     = b1 * m_t + (1 - b1) * g_t
        theta_t = theta_{t-1} - lr_t * n_t / (1 - b1^t) / (sqrt(v_t / (1 - b2^t)) + eps)

    Both terms of n_t share the correction 1 - b1^t (optax's nadam divides b1 * m_t by
    1 - b1^(t+1) instead).
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)

    def init(params):
        return init_adam(params, None)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        lookahead = update_moment(grads, mu, b1, 1)
        correction1, correction2 = 1 - b1**t, 1 - b2**t
        direction = jax.tree.map(
            lambda n, v: (
                (n / correction1.astype(n.dtype))
                / (jnp.sqrt(v) / jnp.sqrt(correction2).astype(v.dtype) + eps)
            ),
            lookahead,
            nu,
        )
        new_state = AdamState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


def cautious_nadamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
) -> Optimizer:
    r"""Cautious NAdamW: timm's NAdamW step masked by `caution` with timm's rescaling.

    With m_t, v_t and the look-ahead n_t = b1 * m_t + (1 - b1) * g_t of `lookahead_adam`:

        d_t     = caution(n_t / (1 - b1^t) / (sqrt(v_t / (1 - b2^t)) + eps), g_t, "timm")
        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * d_t

    Follows timm's `cnadamw` (`NAdamW(caution=True)`, betas named b1 and b2), whose
    Nesterov momentum corrects both terms of n_t by 1 - b1^t: it is not `nadamw` made
    cautious (Dozat's b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Dozat, "Incorporating Nesterov Momentum into Adam",
    ICLR workshop 2016.
    """
    check_given("learning_rate", learning_rate)
    rule = cautious(lookahead_adam(learning_rate, b1, b2, eps), rescale="timm")
    return decoupled_decay(rule, learning_rate, weight_decay)


def cautious_lion(
    learning_rate: ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""Cautious Lion: Lion's sign step masked by `caution`.

    With c_t = sign((1 - b1) * g_t + b1 * m_{t-1}) and m_t as in `lion`:

        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * caution(c_t, g_t)

    n / (k + 1) times the sign on the k kept of n entries. fixed_decay=True shrinks by
    1 - wd; weight_decouple=False adds wd * theta_{t-1} to the gradient instead (which
    the momentum and the mask then see). Arguments and defaults as
    `pytorch_optimizer.Lion(cautious=True)` (betas named b1 and b2).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Chen et al., "Symbolic Discovery of Optimization
    Algorithms", NeurIPS 2023.
    """
    check_given("learning_rate", learning_rate)
    rule = cautious(plain_lion(learning_rate, b1, b2, weight_decay=0.0))
    return weight_decayed(rule, learning_rate, weight_decay, weight_decouple, fixed_decay)


def cautious_laprop(
    learning_rate: ScalarOrSchedule = 4e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-15,
    weight_decay: float = 0.0,
    *,
    centered: bool = False,
    steps_before_using_centered: int = 10,
    ams_bound: bool = False,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""Cautious LaProp: LaProp's momentum step masked by `caution`.

    With m_t and l_t as in `laprop`:

        theta_t = (theta_{t-1} - lr_t / l_t * caution(m_t, g_t)) * (1 - lr_t * wd)

    the decay after the masked step, as in `laprop`. Arguments and defaults as
    `pytorch_optimizer.LaProp(cautious=True)` (betas named b1 and b2).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Ziyin, Wang and Ueda, "LaProp: Separating Momentum
    and Adaptivity in Adam", 2020 (arXiv:2002.04839).
    """
    rule = plain_laprop(
        learning_rate,
        b1,
        b2,
        eps,
        0.0,
        centered=centered,
        steps_before_using_centered=steps_before_using_centered,
        ams_bound=ams_bound,
    )
    return decoupled_decay(
        cautious(rule), learning_rate, weight_decay, fixed_decay=fixed_decay, after_step=True
    )


def cautious_mars(
    learning_rate: ScalarOrSchedule = 3e-3,
    betas: tuple[float, float] = (0.95, 0.99),
    gamma: float = 0.025,
    mars_type: str = "adamw",
    optimize_1d: bool = False,
    learning_rate_1d: ScalarOrSchedule = 3e-3,
    betas_1d: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.0,
    weight_decay_1d: float = 1e-1,
    fixed_decay: bool = False,
    eps: float = 1e-8,
) -> Optimizer:
    r"""Cautious MARS: each leaf's MARS (or AdamW) step masked by `caution`.

    With d_t the direction `mars` takes on a leaf (its learning rate lr_t, lr_1d on the
    leaves it leaves to AdamW, and likewise wd):

        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * caution(d_t, g_t)

    The mask compares d_t with the raw gradient g_t, not the corrected c_t. On the
    leaves that mars_type="lion" updates, the references mask the momentum before its
    sign, which drops the rescaling: there d'_t = caution(sign(m_t), g_t, None).
    Arguments and defaults as `pytorch_optimizer.MARS(cautious=True)` (lr and lr_1d
    named learning_rate and learning_rate_1d), less its options `mars` does not take.

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Yuan et al., "MARS: Unleashing the Power of Variance
    Reduction for Training Large Models", ICML 2025 (arXiv:2411.10438).
    """
    if mars_type not in MARS_TYPES:
        raise NotImplementedError(f"mars_type={mars_type!r} is not supported (only {MARS_TYPES})")
    check_nonnegative("weight_decay", weight_decay)
    check_nonnegative("weight_decay_1d", weight_decay_1d)
    rule = plain_mars(
        learning_rate,
        betas,
        gamma,
        mars_type,
        optimize_1d,
        learning_rate_1d,
        betas_1d,
        weight_decay=0.0,
        weight_decay_1d=0.0,
        eps=eps,
    )

    def update(grads, state, params=None, **extra):
        updates, new_state = rule.update(grads, state, params, **extra)
        lr, lr_1d = value_at(learning_rate, state.count), value_at(learning_rate_1d, state.count)

        def leaf(u, g, p):
            mixed = optimize_1d or p.ndim >= 2
            rescale = None if mars_type == "lion" and mixed else "pytorch_optimizer"
            wd, rate = (weight_decay, lr) if mixed else (weight_decay_1d, lr_1d)
            shrink = wd if fixed_decay else rate * wd
            return -caution(-u, g, rescale) - jnp.asarray(shrink, p.dtype) * p

        return jax.tree.map(leaf, updates, grads, params), new_state

    return Optimizer(rule.init, update)


def cautious_adopt(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = lambda t: t**0.25,
) -> Optimizer:
    r"""Cautious ADOPT: ADOPT's momentum step masked by `caution`.

    With m_t as in `adopt` (which takes no step at t = 1):

        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * caution(m_t, g_t)

    or, with weight_decouple=False (the default), g_t + wd * theta_{t-1} in place of g_t
    throughout (the moments and the mask). The clip of the scaled gradient at step t is
    clip_value_fn(t), t = 1, 2, ... counting the first, initialising step (`adopt`
    counts from 0, as optax does). Arguments and defaults as
    `pytorch_optimizer.ADOPT(cautious=True)` (betas named b1 and b2, clip_lambda named
    clip_value_fn, and use_clipping=False for clip_lambda=None).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Taniguchi et al., "ADOPT: Modified Adam Can Converge
    with Any beta2 with the Optimal Rate", NeurIPS 2024.
    """
    check_given("learning_rate", learning_rate)
    rule = plain_adopt(
        learning_rate,
        b1,
        b2,
        eps,
        use_clipping=use_clipping,
        clip_value_fn=lambda count: clip_value_fn(count + 1),
    )
    return weight_decayed(cautious(rule), learning_rate, weight_decay, weight_decouple, fixed_decay)


def cautious_ademamix(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
) -> Optimizer:
    r"""Cautious AdEMAMix: only the fast momentum of AdEMAMix masked by `caution`.

    With m1_t, m2_t, v_t, b3_t and alpha_t as in `ademamix`:

        d_t     = (caution(m1_t, g_t) / (1 - b1^t) + alpha_t * m2_t)
                  / (sqrt(v_t) / sqrt(1 - b2^t) + eps)
        theta_t = theta_{t-1} * (1 - lr_t * wd) - lr_t * d_t

    or, with weight_decouple=False (the default), g_t + wd * theta_{t-1} in place of g_t
    throughout. The slow momentum is added unmasked, as the reference does. Arguments
    and defaults as `pytorch_optimizer.AdEMAMix(cautious=True)` (betas named b1, b2
    and b3, whose warm-up t_alpha_beta3 is given here as schedules b3 and alpha).

    References: Liang et al., "Cautious Optimizers: Improving Training with One Line of
    Code", 2024 (arXiv:2411.16085); Pagliardini et al., "The AdEMAMix Optimizer:
    Better, Faster, Older", 2024 (arXiv:2409.03137).
    """
    check_given("learning_rate", learning_rate)
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_unit_interval("b3", b3)
    check_nonnegative("alpha", alpha)

    def init(params):
        return AdemamixState(
            count=jnp.zeros([], jnp.int32),
            m1=zeros_like(params),
            m2=zeros_like(params),
            nu=zeros_like(params),
        )

    def update(grads, state, params=None, **extra):
        check_state(state, AdemamixState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        b3_t, alpha_t = value_at(b3, state.count), value_at(alpha, state.count)
        m1 = update_moment(grads, state.m1, b1, 1)
        m2 = update_moment(grads, state.m2, b3_t, 1)
        nu = update_moment(grads, state.nu, b2, 2)
        t = increment(state.count)
        correction1, correction2 = 1 - b1**t, 1 - b2**t
        direction = jax.tree.map(
            lambda m1, m2, v, g: (
                (caution(m1, g) / correction1.astype(m1.dtype) + alpha_t * m2)
                / (jnp.sqrt(v) / jnp.sqrt(correction2).astype(v.dtype) + eps)
            ),
            m1,
            m2,
            nu,
            grads,
        )
        new_state = AdemamixState(
            count=t,
            m1=cast_like(m1, state.m1),
            m2=cast_like(m2, state.m2),
            nu=cast_like(nu, state.nu),
        )
        return descend(learning_rate, state.count, direction), new_state

    rule = Optimizer(init, update)
    return weight_decayed(rule, learning_rate, weight_decay, weight_decouple, fixed_decay)


ADAMW_SPACE = ADAM_SPACE | {"weight_decay": WEIGHT_DECAY}
REGISTRY = {
    "cautious_adamw": OptimizerSpec(
        cautious_adamw,
        LR_GRID,
        search_space=ADAMW_SPACE,
        reference="timm 1.0.31 AdamWLegacy(caution=True)",
    ),
    "cautious_nadamw": OptimizerSpec(
        cautious_nadamw,
        LR_GRID,
        search_space=ADAMW_SPACE,
        reference="timm 1.0.31 NAdamW(caution=True)",
    ),
    # Lion's grid and ranges; its decay, off by default here, up to 1 (3-10x AdamW's).
    "cautious_lion": OptimizerSpec(
        cautious_lion,
        log_grid(1e-5, 1e-1),
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "weight_decay": Choice((0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)),
        },
        reference="pytorch-optimizer 4.1.0 Lion(cautious=True)",
    ),
    "cautious_laprop": OptimizerSpec(
        cautious_laprop,
        LR_GRID,
        search_space={
            "b1": MOMENTUM,
            "b2": SECOND_MOMENT,
            "eps": Range(1e-16, 1e-6, "log"),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 LaProp(cautious=True)",
    ),
    # As `mars`: every leaf corrected, so that one learning rate applies throughout.
    "cautious_mars": OptimizerSpec(
        cautious_mars,
        LR_GRID,
        hparams={"optimize_1d": True},
        search_space={
            "gamma": Range(1e-3, 1e-1),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
            "eps": EPS,
        },
        reference="pytorch-optimizer 4.1.0 MARS(cautious=True)",
    ),
    "cautious_adopt": OptimizerSpec(
        cautious_adopt,
        LR_GRID,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        reference="pytorch-optimizer 4.1.0 ADOPT(cautious=True)",
    ),
    "cautious_ademamix": OptimizerSpec(
        cautious_ademamix,
        LR_GRID,
        search_space=ADAM_SPACE
        | {
            "b3": Range(0.99, 0.99999, "one_minus_log"),
            "alpha": Range(1.0, 10.0, "linear"),
            "weight_decay": WEIGHT_DECAY_OR_OFF,
        },
        reference="pytorch-optimizer 4.1.0 AdEMAMix(cautious=True)",
    ),
}
__all__ = [
    "cautious",
    "cautious_ademamix",
    "cautious_adamw",
    "cautious_adopt",
    "cautious_laprop",
    "cautious_lion",
    "cautious_mars",
    "cautious_nadamw",
]
