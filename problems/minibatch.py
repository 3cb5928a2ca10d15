"""Minibatch (stochastic) versions of the data-set problems."""

import dataclasses

import jax
import jax.numpy as jnp

from problems.base import Problem


def minibatch(problem: Problem, batch_size: int, target: float | None = None) -> Problem:
    """The same problem trained on `batch_size` examples drawn afresh at every step.

    Each step's batch is `batch_size` example indices drawn uniformly, with replacement,
    from the full data set with that step's key (the runner splits one key per lane
    into one key per step inside the scan), so a lane's batches are a function of its
    seed. The loss, f_star and
    metrics stay those of the full data set; `target` defaults to the problem's own.
    """
    if "dataset" not in problem.tags:
        raise ValueError(f"minibatch needs a 'dataset' problem, {problem.name!r} is not one")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def sample_batch(data, key):
        n = jax.tree.leaves(data)[0].shape[0]
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} examples of {problem.name}")
        # With replacement: a sort-based draw without replacement costs more than the
        # gradient on these small data sets.
        index = jax.random.randint(key, (batch_size,), 0, n, jnp.int32)
        return jax.tree.map(lambda leaf: leaf[index], data)

    return dataclasses.replace(
        problem,
        name=f"{problem.name}_batch{batch_size}",
        description=f"{problem.description}, minibatches of {batch_size}",
        tags=problem.tags | {"stochastic"},
        target=problem.target if target is None else target,
        sample_batch=sample_batch,
    )
