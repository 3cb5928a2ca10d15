"""LAMB: Adam with a layer-wise trust ratio."""

import jax

from optimizers.adam import AdamState, adam_direction, check_adam, init_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    trust_ratio_scale,
    with_weight_decay,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY_OR_OFF, OptimizerSpec


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask=None,
) -> Optimizer:
    r"""LAMB (You et al., 2020): the Adam direction plus weight decay, rescaled per layer.

    For step t, with Adam's bias-corrected moments mhat_t, vhat_t (see `adam`):

        u_t     = mhat_t / (sqrt(vhat_t + eps_root) + eps) + wd_t * theta_{t-1}
        r_t     = ||theta_{t-1}|| / ||u_t||        (per leaf; 1 where a norm is 0)
        theta_t = theta_{t-1} - lr_t * r_t * u_t

    Same arguments and defaults as `optax.lamb`; `mask` (a tree of bools or a function
    of the params) limits the weight decay to some leaves. The state is Adam's.

    Reference: You et al., "Large Batch Optimization for Deep Learning: Training BERT
    in 76 minutes", ICLR 2020.
    """
    check_adam(learning_rate, b1, b2, eps, eps_root)
    check_nonnegative("weight_decay", weight_decay)

    def init(params) -> AdamState:
        return init_adam(params, mu_dtype=None)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        direction, new_state = adam_direction(grads, state, b1, b2, eps, eps_root, nesterov=False)
        direction = with_weight_decay(direction, params, weight_decay, state.count, mask)
        direction = jax.tree.map(trust_ratio_scale, direction, params)
        return descend(learning_rate, state.count, direction), new_state

    return Optimizer(init, update)


REGISTRY = {
    "lamb": OptimizerSpec(
        lamb,
        LR_GRID,
        optax_name="lamb",
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY_OR_OFF},
        default_learning_rate=1e-3,  # torch-optimizer's Lamb
    ),
}
__all__ = ["lamb"]
