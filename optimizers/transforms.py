"""Gradient transformations with the names and arguments of optax, and `chain` to combine them.

Each is an `Optimizer(init, update)` pair like the update rules, so that

    chain(clip_by_global_norm(1.0), add_decayed_weights(1e-4), sgd(0.1))

is one optimizer. `chain` accepts this project's rules and optax transformations alike.
"""

import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    check_nonnegative,
    check_same_tree,
    increment,
    require_params,
)


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


class ScheduleState(NamedTuple):
    count: jax.Array  # int32 step counter, feeds the schedule


def _stateless(transform) -> Optimizer:
    """An `Optimizer` whose state is empty and whose update is `transform(updates)`."""

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        return transform(updates), state

    return Optimizer(init, update)


def global_norm(tree) -> jax.Array:
    """sqrt(sum of squares of every entry of every leaf), summed leaf by leaf as optax does."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


def clip_by_global_norm(max_norm) -> Optimizer:
    r"""Rescales the updates to global norm at most `max_norm` (Pascanu et al., ICML 2013).

        u_t = g_t                          if ||g_t|| < max_norm
        u_t = g_t / ||g_t|| * max_norm     otherwise,

    where ||g|| is the 2-norm of all leaves together. Same as `optax.clip_by_global_norm`.
    """
    check_nonnegative("max_norm", max_norm)

    def clip_tree(updates):
        norm = global_norm(updates)
        return jax.tree.map(
            lambda u: jnp.where(norm < max_norm, u, (u / norm.astype(u.dtype)) * max_norm),
            updates,
        )

    return _stateless(clip_tree)


def clip(max_delta) -> Optimizer:
    """Clips every entry of the updates to [-max_delta, max_delta], as `optax.clip`."""
    check_nonnegative("max_delta", max_delta)
    return _stateless(
        lambda updates: jax.tree.map(lambda u: jnp.clip(u, -max_delta, max_delta), updates)
    )


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0, mask: Any = None) -> Optimizer:
    r"""Adds `weight_decay * params` to the updates (L2 regularisation as a transformation).

        u_t = g_t + wd_t * theta_{t-1}

    `weight_decay` may be a schedule of the step count. `mask` is a tree of booleans
    with the structure of the params (or a prefix of it), or a function of the params
    returning one: leaves marked False are left undecayed. Same as
    `optax.add_decayed_weights`, except that a masked transformation keeps its own
    state rather than wrapping it in `optax.MaskedState`.
    """
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        del params
        return (
            ScheduleState(count=jnp.zeros([], jnp.int32))
            if callable(weight_decay)
            else EmptyState()
        )

    def update(updates, state, params=None, **extra):
        del extra
        require_params("add_decayed_weights", params)
        check_same_tree(updates, params, "updates", "params")
        if callable(weight_decay):
            decay, state = weight_decay(state.count), ScheduleState(count=increment(state.count))
        else:
            decay = weight_decay
        decayed = jax.tree.map(lambda u, p: u + decay * p, updates, params)
        if mask is None:
            return decayed, state
        chosen = mask(params) if callable(mask) else mask
        # Broadcast each mask leaf over the subtree of params it covers.
        chosen = jax.tree.map(lambda m, p: jax.tree.map(lambda _: m, p), chosen, params)
        return jax.tree.map(lambda m, d, u: d if m else u, chosen, decayed, updates), state

    return Optimizer(init, update)


def _accepts_extra_args(update) -> bool:
    """True when `update` takes **kwargs (this project's rules, optax's ExtraArgs transforms)."""
    parameters = inspect.signature(update).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def chain(*transforms) -> Optimizer:
    """Applies `transforms` in order, each to the updates of the one before; as `optax.chain`.

    The state is the tuple of the transforms' states. Extra keyword arguments of
    `update` (a loss value, say) reach only the transforms whose `update` accepts them.
    """

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None, **extra):
        if len(state) != len(transforms):
            raise ValueError(
                f"state holds {len(state)} entries for {len(transforms)} chained transforms; "
                "create it with this chain's init"
            )
        new_state = []
        for transform, inner in zip(transforms, state, strict=True):
            kwargs = extra if _accepts_extra_args(transform.update) else {}
            updates, inner = transform.update(updates, inner, params, **kwargs)
            new_state.append(inner)
        return updates, tuple(new_state)

    return Optimizer(init, update)
