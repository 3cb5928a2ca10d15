"""Adam-mini: Adam with one second moment per parameter block instead of per entry."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.adam import check_adam
from optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    cast_like,
    check_nonnegative,
    check_same_tree,
    check_state,
    descend,
    increment,
    state_dtype,
    update_moment,
    with_weight_decay,
    zeros_like,
)
from optimizers.registry import ADAM_SPACE, LR_GRID, WEIGHT_DECAY, OptimizerSpec

# The partitions a leaf can have (besides an int block size).
LEAF, ELEMENT = "leaf", "element"


class AdamMiniState(NamedTuple):
    count: jax.Array  # int32 number of updates taken
    mu: Any  # first moment m, per entry
    nu: Any  # second moment v, one per block: () per leaf, (size / k,) per k-block, or per entry


def _partition(blocks, params):
    """Each leaf's partition ("leaf", "element" or an int block size), from `blocks`:
    None (every leaf one block), a tree or a prefix of one, or a function of the params."""
    if blocks is None:
        return jax.tree.map(lambda _: LEAF, params)
    chosen = blocks(params) if callable(blocks) else blocks
    partition = jax.tree.map(lambda b, p: jax.tree.map(lambda _: b, p), chosen, params)
    for kind, p in zip(jax.tree.leaves(partition), jax.tree.leaves(params), strict=True):
        size = int(np.prod(np.shape(p), dtype=np.int64))
        if kind in (LEAF, ELEMENT):
            continue
        if isinstance(kind, bool) or not isinstance(kind, int) or kind < 1:
            raise ValueError(f"blocks must be 'leaf', 'element' or an int >= 1, got {kind!r}")
        if size % kind:
            raise ValueError(f"a block size of {kind} does not divide a leaf of {size} entries")
    return partition


def _block_shape(kind, p):
    if kind == ELEMENT:
        return np.shape(p)
    if kind == LEAF:
        return ()
    return (int(np.prod(np.shape(p), dtype=np.int64)) // kind,)


def _block_means(kind, g):
    """The mean of g^2 over each block: per entry, over the leaf, or over k-blocks."""
    if kind == ELEMENT:
        return g * g
    if kind == LEAF:
        return jnp.sum(g * g) / g.size
    return jnp.mean(jnp.square(g.reshape(-1, kind)), axis=1)


def _per_entry(kind, x, like):
    """A block statistic spread over the entries of its leaf."""
    if kind in (ELEMENT, LEAF):
        return x
    return jnp.broadcast_to(x[:, None], (x.shape[0], kind)).reshape(like.shape)


def adam_mini(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.1,
    mask: Any = None,
    blocks: Any = None,
) -> Optimizer:
    r"""Adam-mini (Zhang et al., 2025): Adam whose second moment is one number per block
    of parameters, the mean of the squared gradient over the block.

    For step t = 1, 2, ... with gradient g_t, and for each block B of a leaf:

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t                   (per entry)
        v_t[B]  = b2 * v_{t-1}[B] + (1 - b2) * mean_{i in B}(g_t[i]^2)
        h_t[B]  = sqrt(v_t[B]) / sqrt(1 - b2^t) + eps
        theta_t = theta_{t-1} - lr_t * (m_t / ((1 - b1^t) * h_t) + wd_t * theta_{t-1})

    with eps added after the bias correction, as in the reference implementation
    (pytorch-optimizer's `AdamMini`).

    The partition into blocks, per leaf, is `blocks` (a tree of the values below, a
    prefix of one, or a function of the params; None: "leaf" for every leaf):

    - "leaf": the whole leaf is one block (the reference's partition of every layer it
      does not single out by name, by default all of them);
    - "element": every entry is its own block, which is Adam (the reference's partition
      of the embedding and output layers, named embed, embd, wte, lm_head or output);
    - an int k: consecutive runs of k entries in row-major order, each a block (the
      reference's attention heads: k = num_embeds^2 / num_heads for the query and key
      projections, k = size / (num_query_groups * (num_heads / num_query_groups + 2))
      for a fused query-key-value weight); k must divide the leaf's size.

    The pytree has no layer names to read: the partition the reference derives from a
    torch module's parameter names is given here leaf by leaf. The decay is decoupled
    (weight_decay 0.1 by default, as the reference's); `mask` (a tree of bools or a
    function of the params) selects the leaves that decay, where the reference exempts
    the layers named norm or ln_f. The state keeps the params' dtype (the reference
    keeps float32 moments whatever the params' dtype).

    Reference: Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More",
    ICLR 2025 (arXiv:2406.16793).
    """
    check_adam(learning_rate, b1, b2, eps, 0.0)
    check_nonnegative("weight_decay", weight_decay)

    def init(params):
        partition = _partition(blocks, params)
        nu = jax.tree.map(
            lambda kind, p: jnp.zeros(_block_shape(kind, p), state_dtype(p.dtype)),
            partition,
            params,
        )
        return AdamMiniState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=nu)

    def update(grads, state, params=None, **extra):
        check_state(state, AdamMiniState)
        del extra
        if params is not None:
            check_same_tree(grads, params, "grads", "params")
        partition = _partition(blocks, grads)
        t = increment(state.count)
        mu = update_moment(grads, state.mu, b1, 1)
        means = jax.tree.map(_block_means, partition, grads)
        nu = jax.tree.map(lambda s, v: (1 - b2) * s + b2 * v, means, state.nu)
        correction1, root_correction2 = 1 - b1**t, jnp.sqrt(1 - b2**t)

        def direction(kind, m, v):
            h = jnp.sqrt(v) / root_correction2.astype(v.dtype) + eps
            return m / _per_entry(kind, correction1.astype(m.dtype) * h, m)

        directions = jax.tree.map(direction, partition, mu, nu)
        directions = with_weight_decay(directions, params, weight_decay, state.count, mask)
        new_state = AdamMiniState(count=t, mu=cast_like(mu, state.mu), nu=cast_like(nu, state.nu))
        return descend(learning_rate, state.count, directions), new_state

    return Optimizer(init, update)


REGISTRY = {
    "adam_mini": OptimizerSpec(
        adam_mini,
        LR_GRID,
        search_space=ADAM_SPACE | {"weight_decay": WEIGHT_DECAY},
        default_learning_rate=1e-3,  # Adam's (the paper tunes it as AdamW's)
        reference="pytorch-optimizer 4.1.0 AdamMini",
    ),
}
__all__ = ["AdamMiniState", "adam_mini"]
