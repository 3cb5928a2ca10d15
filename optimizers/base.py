"""What every update rule shares: the `Optimizer` pair, tree helpers and argument checks.

An optimizer is a pair of pure functions, duck-compatible with
`optax.GradientTransformation`:

    state = init(params)
    updates, state = update(grads, state, params=None, **extra)
    params = apply_updates(params, updates)
"""

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


def zeros_like(params, dtype=None):
    """A tree of zeros shaped like `params`, in `dtype` or each leaf's own dtype."""
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


def cast_like(tree, like):
    """Casts each leaf of `tree` to the dtype of the matching leaf of `like`.

    Keeps optimizer state in the dtype it was created with when a traced (float32)
    hyperparameter meets low-precision params, so `lax.scan` carries stay fixed.
    """
    return jax.tree.map(lambda t, l: t.astype(l.dtype), tree, like)


def descend(learning_rate: ScalarOrSchedule, count, direction):
    """The last line of every rule: updates = -lr_t * direction.

    A schedule is evaluated at `count` and its value cast to each leaf's dtype, as
    `optax.scale_by_learning_rate` does; a number (or tracer) multiplies as is.
    """
    if callable(learning_rate):
        lr = learning_rate(count)
        return jax.tree.map(lambda d: -jnp.asarray(lr, d.dtype) * d, direction)
    return jax.tree.map(lambda d: -learning_rate * d, direction)


def increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping around."""
    limit = jnp.iinfo(jnp.int32).max
    return jnp.where(count < limit, count + 1, limit).astype(jnp.int32)


def _known_now(value):
    """`value` as a NumPy array when it is concrete, else None (a tracer or a schedule)."""
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def check_nonnegative(name: str, value) -> None:
    """Raises ValueError naming `name` when a concrete `value` is negative or NaN."""
    known = _known_now(value)
    if known is not None and not np.all(known >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_unit_interval(name: str, value) -> None:
    """Raises ValueError naming `name` when a concrete `value` lies outside [0, 1)."""
    known = _known_now(value)
    if known is not None and not np.all((known >= 0) & (known < 1)):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def not_supported(name: str, value, supported) -> None:
    """Raises NotImplementedError for an optax option this rule does not implement."""
    if value != supported:
        raise NotImplementedError(
            f"{name}={value!r} is not supported by this optimizer (only {name}={supported!r})"
        )
