"""What the rules ported from pytorch_optimizer share: its weight-decay modes, torch's
linear interpolation, its second moment, the checks of an update's arguments, the state
before the first step and after each, and a per-leaf map with several results.

pytorch_optimizer's rules take three weight-decay options: `weight_decay` (wd),
`weight_decouple` and `fixed_decay`. Coupled decay adds wd * theta to the gradient
before the rule reads it (L2 regularisation); decoupled decay shrinks the parameters by
the factor 1 - wd * lr (1 - wd with fixed_decay) before the rule's step, as AdamW does.
"""

import jax
import jax.numpy as jnp

from optimizers.base import (
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    check_unit_interval,
    require_params,
    state_dtype,
    value_at,
    zeros_like,
)

# Added to v_t under the square root, as pytorch_optimizer's Adam relatives add it.
EPS_ROOT = 1e-15


def check_decay(weight_decay) -> None:
    """Raises ValueError when a concrete weight_decay is negative."""
    check_nonnegative("weight_decay", weight_decay)


def check_adam_arguments(learning_rate, b1, b2, weight_decay, eps) -> None:
    """Raises ValueError when a concrete learning_rate, weight_decay or eps is negative,
    or b1 or b2 lies outside [0, 1): the arguments every Adam relative here takes."""
    check_nonnegative("learning_rate", learning_rate)
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_decay(weight_decay)
    check_nonnegative("eps", eps)


def coupled_gradient(g, p, weight_decay, weight_decouple: bool):
    """g + wd * theta under coupled decay (weight_decouple=False); g under decoupled decay."""
    return g if weight_decouple else g + weight_decay * p


def decoupled_decay(p, lr, weight_decay, weight_decouple: bool, fixed_decay: bool, ratio=1.0):
    """The decoupled decay's share of the update, -wd * lr * ratio * theta
    (-wd * ratio * theta with fixed_decay); zero under coupled decay."""
    if not weight_decouple:
        return jnp.zeros_like(p)
    return -(weight_decay * (1.0 if fixed_decay else lr) * ratio) * p


def lerp(start, end, weight):
    """start + weight * (end - start), rounded as torch's `lerp` rounds it: computed from
    `end` when |weight| >= 0.5, so that weight = 1 gives `end` exactly."""
    weight = jnp.asarray(weight, start.dtype)
    return jnp.where(
        jnp.abs(weight) < 0.5,
        start + weight * (end - start),
        end - (end - start) * (1 - weight),
    )


def learning_rate_at(learning_rate, count, dtype=None):
    """The learning rate at step `count` (a schedule's value, or the number itself)."""
    lr = value_at(learning_rate, count)
    return lr if dtype is None else jnp.asarray(lr, dtype)


def check_arguments(rule: str, state, state_type, grads, params) -> None:
    """Raises TypeError where the rule's update got a state that is not its `state_type`
    (another rule's, or optax's), and ValueError where it got no params, or grads and
    params of different structures."""
    check_state(state, state_type)
    require_params(rule, params)
    check_same_tree(grads, params, "grads", "params")


def initial_state(state_type, params, **fields):
    """The rule's state before its first step: count 0, the given `fields`, and every
    other field zeros shaped like the params (each leaf in its `state_dtype`)."""
    zeros = {
        name: zeros_like(params)
        for name in state_type._fields
        if name != "count" and name not in fields
    }
    return state_type(count=jnp.zeros([], jnp.int32), **fields, **zeros)


def leaf_zeros(params):
    """A zero scalar per leaf, in the leaf's `state_dtype`: the start of a per-leaf statistic."""
    return jax.tree.map(lambda p: jnp.zeros([], state_dtype(p.dtype)), params)


def advanced(state, **fields):
    """`state` with the given fields replaced, each cast to the dtype of the one it
    replaces (so that `lax.scan` carries keep their types)."""
    return state._replace(
        **{name: cast_like(value, getattr(state, name)) for name, value in fields.items()}
    )


def second_moment(g, v, v_max, b2, ams_bound: bool, eps):
    """(v_t, u_t, sqrt(u_t + 1e-15) + eps): v_t = b2 * v_{t-1} + (1 - b2) * g_t^2, its
    running maximum u_t = max(u_{t-1}, v_t) with ams_bound (u unchanged and u_t = v_t
    in the denominator otherwise), and Adam's denominator as pytorch_optimizer's rules
    take it."""
    v = b2 * v + (1.0 - b2) * (g * g)
    v_max = jnp.maximum(v_max, v) if ams_bound else v_max
    return v, v_max, jnp.sqrt((v_max if ams_bound else v) + EPS_ROOT) + eps


def _floating(leaf):
    """An integer leaf as JAX's default float type (as optax promotes it); others as they are."""
    leaf = jnp.asarray(leaf)
    return leaf if jnp.issubdtype(leaf.dtype, jnp.inexact) else leaf.astype(state_dtype(leaf.dtype))


def float_copy(params):
    """A copy of every leaf, in its `state_dtype` (integer params as floats), for state
    that starts at the params."""
    return jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype(jnp.asarray(p).dtype)), params)


def map_leaves(fn, tree, *others):
    """`fn` applied leaf by leaf to `tree` and the matching leaves of `others` (trees of
    the same structure); `fn` returns a tuple, and the result is a tuple of trees, one
    per entry of it. Integer leaves (params, gradients) enter as floats, so that the
    arithmetic and the state of integer params are those of the same params as floats."""
    treedef = jax.tree.structure(tree)
    columns = [jax.tree.leaves(tree)] + [treedef.flatten_up_to(other) for other in others]
    columns = [[_floating(leaf) for leaf in column] for column in columns]
    results = [fn(*arguments) for arguments in zip(*columns, strict=True)]
    return tuple(jax.tree.unflatten(treedef, list(column)) for column in zip(*results, strict=True))


def check_fraction(name: str, value) -> None:
    """Raises ValueError naming `name` when a concrete `value` lies outside [0, 1]."""
    check_nonnegative(name, value)
    if isinstance(value, int | float) and value > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
