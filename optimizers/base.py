"""What every update rule shares: the `Optimizer` pair, tree helpers and argument checks.

An optimizer is a pair of pure functions, duck-compatible with
`optax.GradientTransformation`:

    state = init(params)
    updates, state = update(grads, state, params=None, **extra)
    params = apply_updates(params, updates)
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


class Optimizer(NamedTuple):
    """An update rule as two pure functions; drops in wherever optax expects a transformation."""

    init: Callable[..., Any]
    update: Callable[..., tuple[Any, Any]]


def apply_updates(params, updates):
    """Returns `params + updates`, leaf by leaf, keeping each parameter's dtype."""
    check_same_tree(updates, params, "updates", "params")
    return jax.tree.map(
        lambda p, u: jnp.asarray(p + u).astype(jnp.asarray(p).dtype), params, updates
    )


def check_same_tree(tree, reference, name, reference_name):
    """Raises ValueError when `tree` does not have the structure of `reference`."""
    structure, reference_structure = jax.tree.structure(tree), jax.tree.structure(reference)
    if structure != reference_structure:
        raise ValueError(
            f"{name} and {reference_name} must have the same tree structure; "
            f"got {structure} and {reference_structure}"
        )


def state_dtype(dtype):
    """The dtype of state kept for params of `dtype`: the same for a floating or complex
    dtype; JAX's default float type for an integer or bool one (as arithmetic with a
    Python float promotes it), so that moments of integer params are not truncated."""
    return jnp.result_type(dtype, float)


def zeros_like(params, dtype=None):
    """A tree of zeros shaped like `params`, in `dtype` or each leaf's `state_dtype`."""
    return jax.tree.map(
        lambda p: jnp.zeros_like(p, dtype=state_dtype(p.dtype) if dtype is None else dtype), params
    )


def full_like(params, value):
    """A tree shaped like `params` filled with `value`, in each leaf's `state_dtype`."""
    return jax.tree.map(lambda p: jnp.full_like(p, value, dtype=state_dtype(p.dtype)), params)


def check_state(state, state_type) -> None:
    """Raises TypeError when `state` is not the `state_type` this rule's init returns
    (an optax state, say, or another rule's)."""
    if not isinstance(state, state_type):
        raise TypeError(
            f"state must be the {state_type.__name__} that this optimizer's init returns, "
            f"got {type(state).__name__}; a state from optax or another rule does not carry over"
        )


def require_params(rule: str, params) -> None:
    """Raises ValueError when the update of a rule that reads the parameters got none."""
    if params is None:
        raise ValueError(f"{rule} needs the params: call update(grads, state, params)")


def require_loss(rule: str, **arguments) -> None:
    """Raises ValueError when an argument the rule's update needs (the loss value or
    function) is missing, saying where it went missing."""
    missing = [name for name, value in arguments.items() if value is None]
    if missing:
        raise ValueError(
            f"{rule} needs {' and '.join(missing)} in update(grads, state, params, "
            f"{', '.join(f'{name}=...' for name in arguments)}) and got none. "
            "optax.chain passes extra arguments only to optax's own transformations: chain "
            "this rule with optimizers.transforms.chain. fused_step passes only the gradient: "
            "call this rule's update instead."
        )


def cast_like(tree, like):
    """Casts each leaf of `tree` to the dtype of the matching leaf of `like`.

    Keeps optimizer state in the dtype it was created with when a traced (float32)
    hyperparameter meets low-precision params, so `lax.scan` carries stay fixed.
    """
    return jax.tree.map(lambda t, l: t.astype(l.dtype), tree, like)


def descend(learning_rate: ScalarOrSchedule | None, count, direction):
    """The last line of every rule: updates = -lr_t * direction.

    A schedule is evaluated at `count` and its value cast to each leaf's dtype, as
    `optax.scale_by_learning_rate` does; a number (or tracer) multiplies as is. None
    applies no scaling, not even the sign flip: the updates are the direction, as
    optax's aliases give them for learning_rate=None (a later transform scales them).
    """
    if learning_rate is None:
        return direction
    if callable(learning_rate):
        lr = learning_rate(count)
        return jax.tree.map(lambda d: -jnp.asarray(lr, d.dtype) * d, direction)
    return jax.tree.map(lambda d: -learning_rate * d, direction)


def with_weight_decay(direction, params, weight_decay, count, mask=None):
    """direction + wd_t * params, as `optax.add_decayed_weights(weight_decay, mask)` adds it.

    `weight_decay` may be a schedule, evaluated at `count`. `mask` selects the leaves
    that decay: a tree of bools with the structure of the params (or a prefix of it),
    or a function of the params returning one; None decays every leaf.
    """
    if params is None and not jax.tree.leaves(direction):
        return direction  # an empty tree (a matrix rule's other half on a lone matrix)
    require_params("weight decay", params)
    check_same_tree(direction, params, "grads", "params")
    if isinstance(weight_decay, int | float) and weight_decay == 0:
        # A constant zero adds nothing: skip the pass over the params, as optax does.
        return direction
    decays = jax.tree.map(lambda _: True, params) if mask is None else mask
    decays = decays(params) if callable(decays) else decays
    # Broadcast each mask leaf over the subtree of params it covers.
    decays = jax.tree.map(lambda m, p: jax.tree.map(lambda _: m, p), decays, params)
    wd = value_at(weight_decay, count)
    return jax.tree.map(lambda d, p, m: d + wd * p if m else d, direction, params, decays)


def increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping around."""
    limit = jnp.iinfo(jnp.int32).max
    return jnp.where(count < limit, count + 1, limit).astype(jnp.int32)


def _known_now(name: str, value):
    """`value` as a NumPy array when it is concrete, else None (a tracer or a schedule).

    Raises TypeError naming `name` when `value` is not a number (a string, say).
    """
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return None
    known = np.asarray(value)
    if not (np.issubdtype(known.dtype, np.number) or np.issubdtype(known.dtype, np.bool_)):
        raise TypeError(f"{name} must be a number, a JAX array or a schedule, got {value!r}")
    return known


def check_given(name: str, value) -> None:
    """Raises TypeError naming `name` when `value` is None where the rule needs a value."""
    if value is None:
        raise TypeError(f"{name} must be a number, a JAX array or a schedule, got None")


def check_nonnegative(name: str, value) -> None:
    """Raises ValueError naming `name` when a concrete `value` is negative or NaN."""
    known = _known_now(name, value)
    if known is not None and not np.all(known >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_unit_interval(name: str, value) -> None:
    """Raises ValueError naming `name` when a concrete `value` lies outside [0, 1)."""
    known = _known_now(name, value)
    if known is not None and not np.all((known >= 0) & (known < 1)):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def not_supported(name: str, value, supported) -> None:
    """Raises NotImplementedError for an optax option this rule does not implement."""
    if value != supported:
        raise NotImplementedError(
            f"{name}={value!r} is not supported by this optimizer (only {name}={supported!r})"
        )


def value_at(hyperparameter, count):
    """A hyperparameter's value at step `count`: the schedule's value, or the number itself."""
    return hyperparameter(count) if callable(hyperparameter) else hyperparameter


def safe_norm(x, min_norm):
    """max(||x||_2, min_norm), with a gradient that stays finite at x = 0 (as `optax.safe_norm`)."""
    norm = jnp.linalg.norm(x)
    x = jnp.where(norm <= min_norm, jnp.ones_like(x), x)
    return jnp.where(norm <= min_norm, min_norm, jnp.linalg.norm(x))


def trust_ratio_scale(update, param, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    """Rescales one leaf's update to `trust_coefficient * ||param|| / (||update|| + eps)` times.

    The layer-wise trust ratio of LARS, LAMB and Fromage; left at 1 where either norm is 0.
    """
    param_norm, update_norm = safe_norm(param, min_norm), safe_norm(update, min_norm)
    ratio = trust_coefficient * param_norm / (update_norm + eps)
    zero_norm = jnp.logical_or(param_norm == 0.0, update_norm == 0.0)
    return update * jnp.where(zero_norm, jnp.array(1.0, dtype=param.dtype), ratio)


def abs_sq(x):
    """|x|^2 element-wise: x * x for real x, Re(conj(x) * x) for complex x, as `optax.abs_sq`.

    Real for complex x, so that second moments of complex gradients are real-valued.
    """
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def update_moment(grads, moments, decay, order: int):
    """The exponential moving average (1 - decay) * |g|^order + decay * m, leaf by leaf.

    order 1 gives a first moment (momentum) of g itself, order 2 a second moment of
    |g|^2 (`abs_sq`), as optax's `tree.update_moment` and
    `tree.update_moment_per_elem_norm` compute them.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    power = abs_sq if order == 2 else (lambda g: g)
    return jax.tree.map(lambda g, m: (1 - decay) * power(g) + decay * m, grads, moments)


def debiased_momentum(mu, grads, b1, t, correction1, nesterov: bool):
    """Adam's bias-corrected first moment mhat_t, with correction1 = 1 - b1^t.

        mhat_t = m_t / (1 - b1^t)
        mhat_t = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)   (nesterov, Dozat 2016)

    The corrections are in the counter's float type and cast to each leaf's dtype.
    """
    if not nesterov:
        return jax.tree.map(lambda m: m / correction1.astype(m.dtype), mu)
    correction1_next = 1 - b1 ** increment(t)
    return jax.tree.map(
        lambda m, g: (
            b1 * (m / correction1_next.astype(m.dtype))
            + (1 - b1) * (g / correction1.astype(state_dtype(g.dtype)))
        ),
        mu,
        grads,
    )


def squared_norm(tree):
    """||x||^2 over every entry of every leaf, each leaf summed, then the leaves in tree order."""
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def vdot(tree_x, tree_y):
    """<x, y> over every entry of every leaf: each leaf contracted whole at full precision,
    then the leaves summed in tree order, as `optax.tree.vdot` computes it."""
    products = [
        jnp.tensordot(x, y, x.ndim, precision=jax.lax.Precision.HIGHEST)
        for x, y in zip(jax.tree.leaves(tree_x), jax.tree.leaves(tree_y), strict=True)
    ]
    return sum(products)


def lowest_dtype(tree):
    """The least precise dtype among the leaves: the dtype of a rule's scalar state."""
    dtypes = [jnp.asarray(leaf).dtype for leaf in jax.tree.leaves(tree)]
    return functools.reduce(lambda a, b: a if jnp.promote_types(a, b) == b else b, dtypes)


def copy_tree(tree):
    """A copy of every leaf, for state that starts at the params (its own buffers to donate)."""
    return jax.tree.map(jnp.copy, tree)
