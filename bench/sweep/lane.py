"""What one lane does: the program of a (trial, seed[, fold]) lane of a sweep, from its
initial point through its steps to the values it records, and what it is given (the
problem's data as program arguments, the dtype, mixed precision, the folds).
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.sweep import targets
from optimizers import OptimizerSpec, apply_updates
from problems import Problem

DTYPES = ("float32", "float64", "bfloat16")
# bfloat16 is mixed precision: the loss and its gradient are computed in bfloat16 on
# float32 master weights (and float32 optimizer state), as mixed-precision training does.
MIXED = jnp.dtype(jnp.bfloat16)


def _cast_floats(tree, dtype):
    return jax.tree.map(
        lambda x: (
            jnp.asarray(x, dtype)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
            else jnp.asarray(x)
        ),
        tree,
    )


@functools.cache
def _value_and_grad(loss) -> Callable[..., tuple[jax.Array, Any]]:
    """jit(value_and_grad(loss)), one per loss: JAX traces it once for every optimizer."""
    return jax.jit(jax.value_and_grad(loss))


@functools.cache
def mixed_precision(loss):
    """`loss` computed in bfloat16 from float32 (master) parameters and data: the
    parameters and the batch's floats are cast to bfloat16 on the way in, the loss back
    to float32, so that its gradient with respect to the master weights is float32."""

    def mixed(params, batch):
        value = loss(_cast_floats(params, MIXED), _cast_floats(batch, MIXED))
        return jnp.asarray(value).astype(jnp.float32)

    return mixed


def master_dtype(dtype) -> jnp.dtype:
    """The dtype of the parameters and optimizer state: float32 under mixed precision."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == MIXED else dtype


def compute_loss(problem: Problem, dtype):
    """The loss the sweep differentiates: the problem's, or its mixed-precision form."""
    return mixed_precision(problem.loss) if jnp.dtype(dtype) == MIXED else problem.loss


def program_inputs(problem: Problem, dtype) -> dict:
    """What a sweep's program takes as arguments besides its lanes: the training data
    (`train`, floats in the compute dtype; None where a problem has no data) and, for
    problems that declare it, the held-out data of their metrics (`test`)."""
    inputs = {"train": _cast_floats(problem.data(), jnp.dtype(dtype))}
    if problem.test_data is not None:
        inputs["test"] = _cast_floats(problem.test_data(), jnp.dtype(dtype))
    return inputs


def lane_inputs(problem: Problem, seeds, dtype):
    """The data of each lane of `seeds` (`Problem.lane_data`), stacked on a leading lane
    axis, floats in the compute dtype; None for a problem whose lanes share their data."""
    if problem.lane_data is None:
        return None
    drawn = {seed: problem.lane_data(seed) for seed in sorted({int(s) for s in seeds})}
    own = [drawn[int(seed)] for seed in seeds]  # each seed's data drawn once, not per trial
    return _cast_floats(jax.tree.map(lambda *x: np.stack(x), *own), jnp.dtype(dtype))


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def fold_indices(examples: int, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) example indices per fold: shapes (folds, n - n//folds), (folds, n//folds).

    The examples are shuffled once by a fixed key, then cut into `folds` equal blocks;
    the `examples % folds` left over always train, so every fold has the same shapes.
    """
    if not 2 <= folds <= examples:
        raise ValueError(f"folds must be between 2 and the {examples} examples, got {folds}")
    order = np.asarray(jax.random.permutation(jax.random.PRNGKey(0), examples))
    size = examples // folds
    held_out = order[: size * folds].reshape(folds, size)
    train = np.stack([np.setdiff1d(order, block) for block in held_out])
    return train, held_out


def log_step_grid(steps: int, points: int = 100) -> np.ndarray:
    """Step indices 0..steps, every step for short runs, else about `points` log-spaced ones."""
    if steps + 1 <= points:
        return np.arange(steps + 1)
    grid = np.unique(np.round(np.logspace(0, np.log10(steps), points)).astype(int))
    return np.concatenate([[0], grid])


def _train_step(problem: Problem, spec: OptimizerSpec, opt, loss_fn):
    """One training step of one lane: (params, state, training data, key, whether it is the
    first step) -> the new params and state, the loss and gradient the update was given,
    and the evaluations it made. Where the rule's state holds f and its gradient at the
    iterate (`OptimizerSpec.stored_value_and_grad`: a line search's accepted point), every
    step after the first is given those, and nothing is evaluated twice."""
    grad_fn = _value_and_grad(loss_fn)
    stored = spec.stored_value_and_grad

    def step(params, state, train, key, first):
        batch = problem.sample_batch(train, key) if problem.sample_batch is not None else train
        if stored is None:
            loss, grads = grad_fn(params, batch)
        else:  # `first` is the same in every lane, so under vmap this stays a branch
            from_state = stored
            loss, grads = jax.lax.cond(
                first, lambda: grad_fn(params, batch), lambda: from_state(state)
            )
        extra = spec.update_extras(loss, grads, lambda p: loss_fn(p, batch))
        updates, state = opt.update(grads, state, params, **extra)
        made = spec.evaluations(state, problem.dim)
        return apply_updates(params, updates), state, (loss, grads), made

    return step


def lane_program(
    problem: Problem,
    spec: OptimizerSpec,
    steps: int,
    dtype,
    fixed: Mapping,
    folds=None,
    record_steps=None,
    levels=None,
):
    """One lane: (inputs, swept hyperparameters, seed[, fold]) -> recorded curves, end metrics.

    `inputs` is `program_inputs`' dict, the data every lane shares, passed to the compiled
    program as an argument, never baked into it as a constant. Curves (loss, gradient
    norm, cumulative gradient evaluations, the iterate for 2-D problems, per-layer
    gradient norms where the problem defines them) are taken at `record_steps` (default:
    every step 0 .. steps), and only there (evaluation runs on its own cadence):
    - a problem with an `eval_batch` records the training loss on that fixed batch (a
      forward pass only) and the norms of the gradient the step's update was given;
    - any other records the full-batch loss and gradient, taken from the update where its
      gradient is that one (full batch, at the iterate), else computed.
    With `folds` = (train, held-out) index arrays the lane trains on its fold's training
    examples and reports the held-out loss as the metric `validation_loss`. On a problem
    trained on its full batch the lane also returns, exact to the step rather than to the
    record grid, the first step at the target and the step from which it stays there to
    the end (`_reached`), judged at the rule's evaluation point, for the problem's own
    target and for each of `levels` (`targets.level_targets`: name -> target, NaN where
    not judged). With dtype bfloat16 the
    loss is computed in bfloat16 from float32 parameters and state (`mixed_precision`).
    """
    dtype = jnp.dtype(dtype)
    master = master_dtype(dtype)
    loss_fn = compute_loss(problem, dtype)
    grad_fn = _value_and_grad(loss_fn)
    folds = None if folds is None else tuple(jnp.asarray(f) for f in folds)
    record_steps = np.arange(steps + 1) if record_steps is None else np.asarray(record_steps)
    # Per step: its row among the record points, or len(record_steps) where it records none.
    slots = np.full(steps + 1, len(record_steps))
    slots[record_steps] = np.arange(len(record_steps))
    batch_eval = problem.eval_batch is not None
    # Full batch at every step: the loss at the target is judged at every step, at the
    # rule's evaluation point (`tracked`); where that point is the iterate, the update's
    # own loss and gradient are the full-batch ones there and are recorded as they are.
    tracked = not problem.stochastic and not batch_eval
    reuse = tracked and spec.eval_params is None
    # The largest losses at the problem's own target, then at each level's.
    gaps = [problem.target, *(levels or {}).values()]
    thresholds = jnp.asarray([targets.threshold(problem.f_star, g, master) for g in gaps], master)

    def record(params, loss, grads, evaluations):
        out = {"loss": loss, "grad_norm": _global_norm(grads), "grad_evals": evaluations}
        if problem.dim == 2:
            out["path"] = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)])
        if problem.layer_grad_norms is not None:
            out["layer_grad_norms"] = problem.layer_grad_norms(grads)
        return out

    def lane(inputs, swept: dict[str, jax.Array], seed: jax.Array, *extra):
        # extra: the lane's fold where `folds` is given, then its own data where the
        # problem has `lane_data` (`lane_inputs`)
        fold = extra[0] if folds is not None else None
        data, test = inputs["train"], inputs.get("test")
        if problem.lane_data is not None:
            data = extra[-1]
        train, held_out = data, None
        if folds is not None:
            train_examples, held_out_examples = folds
            train = jax.tree.map(lambda x: x[train_examples[fold]], data)
            held_out = jax.tree.map(lambda x: x[held_out_examples[fold]], data)
        evaluation = problem.eval_batch(train) if problem.eval_batch is not None else None
        batch_key = jax.random.split(jax.random.PRNGKey(seed))[1]
        init_key = targets.start_key(seed)
        params = _cast_floats(problem.init(init_key), master)
        opt = spec.factory(**swept, **fixed)
        state = opt.init(params)
        train_step = _train_step(problem, spec, opt, loss_fn)

        def step(carry, xs):
            params, state, _, evaluations, records, hits = carry
            step_key, slot, index = xs
            # The loss is recorded at the rule's evaluation point where it declares one
            # (schedule-free rules), else at the iterate the gradient is taken at.
            point = params if spec.eval_params is None else spec.eval_params(state, params)
            new_params, new_state, used, made = train_step(
                params, state, train, step_key, index == 0
            )

            def evaluate(records):
                if batch_eval:
                    row = record(point, loss_fn(point, evaluation), used[1], evaluations)
                else:
                    row = record(point, *(used if reuse else grad_fn(point, train)), evaluations)
                return jax.tree.map(lambda rows, x: rows.at[slot].set(x), records, row)

            # `slot` is the same in every lane, so under vmap this stays a branch.
            records = jax.lax.cond(slot < len(record_steps), evaluate, lambda r: r, records)
            if tracked:  # the evaluation point's loss costs the benchmark a forward pass
                at = used[0] if reuse else loss_fn(point, train)
                hits = _track(hits, at <= thresholds, index, evaluations, evaluations + made)
            return (new_params, new_state, point, evaluations + made, records, hits), None

        # steps + 1 iterations reach steps 0 .. steps; the update made by the last one is
        # dropped (its input evaluation point is kept in the carry for the end metrics).
        step_keys = jax.random.split(batch_key, steps)
        step_keys = jnp.concatenate([step_keys, step_keys[-1:]])
        none = jnp.zeros([], jnp.float32)  # cumulative evaluations before the first step
        probe = evaluation if batch_eval else train  # a batch the loss accepts
        rows = jax.eval_shape(lambda p: record(p, *grad_fn(p, probe), none), params)
        records = jax.tree.map(lambda x: jnp.zeros((len(record_steps), *x.shape), x.dtype), rows)
        carry = (params, state, params, none, records, _untracked(len(gaps)))
        xs = (step_keys, jnp.asarray(slots), jnp.arange(steps + 1, dtype=jnp.int32))
        (_, _, params, _, curves, hits), _ = jax.lax.scan(step, carry, xs)
        if test is None:
            metrics = {name: fn(params) for name, fn in problem.metrics.items()}
        else:  # held-out metrics in the compute dtype, on the data passed in
            computed = _cast_floats(params, dtype)
            metrics = {name: fn(computed, test) for name, fn in problem.metrics.items()}
        if held_out is not None:
            metrics["validation_loss"] = loss_fn(params, held_out)
        return curves, metrics, (_reached(hits, steps) if tracked else None)

    return lane


def _untracked(count: int):
    """The scan's account of `count` targets before step 0, per lane and target: (first
    step at it, evaluations before it; the step from which it has stayed at it,
    evaluations before that). The first is -1 until found; the second starts at step 0
    and moves past every step found above the target."""
    none = jnp.zeros(count, jnp.float32)
    return jnp.full(count, -1, jnp.int32), none - 1, jnp.zeros(count, jnp.int32), none


def _track(hits, at_target, index, evaluations, after):
    """`hits` after step `index`, whose loss is at the target where `at_target` (False for
    NaN), `evaluations` made before it and `after` once its update is made."""
    first_step, first_evals, stay_step, stay_evals = hits
    first = (first_step < 0) & at_target
    return (
        jnp.where(first, index, first_step),
        jnp.where(first, evaluations, first_evals),
        jnp.where(at_target, stay_step, index + 1),
        jnp.where(at_target, stay_evals, after),
    )


def _reached(hits, steps: int) -> dict[str, tuple[jax.Array, jax.Array]]:
    """The costs of `_track`'s account after steps 0 .. `steps`: "first" (the first step at
    the target) and "lasting" (the step from which the lane stays there to `steps`), each
    (step, evaluations before it) per target, -1 where never."""
    first_step, first_evals, stay_step, stay_evals = hits
    lasts = stay_step <= steps
    never = -jnp.ones_like(stay_evals)
    return {
        "first": (first_step, first_evals),
        "lasting": (jnp.where(lasts, stay_step, -1), jnp.where(lasts, stay_evals, never)),
    }
