"""What the rules ported from pytorch_optimizer share: its weight-decay modes, torch's
linear interpolation, and a per-leaf map with several results.

pytorch_optimizer's rules take three weight-decay options: `weight_decay` (wd),
`weight_decouple` and `fixed_decay`. Coupled decay adds wd * theta to the gradient
before the rule reads it (L2 regularisation); decoupled decay shrinks the parameters by
the factor 1 - wd * lr (1 - wd with fixed_decay) before the rule's step, as AdamW does.
"""

import jax
import jax.numpy as jnp

from optimizers.base import (
    check_nonnegative,
    check_same_tree,
    require_params,
    state_dtype,
    value_at,
)


def check_decay(weight_decay) -> None:
    """Raises ValueError when a concrete weight_decay is negative."""
    check_nonnegative("weight_decay", weight_decay)


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


def check_arguments(rule: str, grads, params) -> None:
    """Raises ValueError where the rule's update got no params, or grads and params of
    different structures."""
    require_params(rule, params)
    check_same_tree(grads, params, "grads", "params")


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
