"""Checks of a user's `Problem` before it is benchmarked: `python -m bench check TARGET`.

A problem that is wrong in one of these ways gives a benchmark that runs and is wrong:

- `dim`: the declared parameter count is that of `init`'s parameters;
- `finite loss`: the loss is a finite floating scalar at the start point (and, for a
  stochastic problem, on a sampled minibatch too);
- `determinism`: the same key gives the same start point, bit for bit, and (stochastic
  problems) the same minibatch;
- `gradient`: `jax.grad` matches float64 central differences (see `gradient_errors`);
- `f_star`: runs of adam and sgd over a small grid of learning rates, and of L-BFGS on a
  deterministic problem, never go below the declared `f_star` by more than the
  problem's target (the tolerance `bench.sweep.arguments.warn_below_f_star` uses), which
  would make suboptimality negative and every lane succeed at once (nothing to check
  where f_star is None, `best_found`).

Every check looks at the start point a lane of seed SEEDS[0] starts from
(`bench.sweep.targets.start_key`).

`check_problem(problem, quick=True)` makes the first three only, compiling no program:
cheap enough for `bench run` to make on every user problem before a sweep.
"""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bench import plugins
from bench.sweep.runner import run_sweep
from bench.sweep.targets import start_key
from problems import Problem

# Two start points are checked, drawn from these seeds.
SEEDS = (0, 1)
# The runs of the f_star check, each over these learning rates, from the start point of
# SEEDS[0]: adam and sgd tuned over a small grid, and on a deterministic problem L-BFGS,
# which reaches a smooth problem's minimum within a few hundred steps.
RUNS = {"adam": (1e-3, 1e-2, 1e-1), "sgd": (1e-3, 1e-2, 1e-1)}
DETERMINISTIC_RUNS = {"lbfgs": (1.0,)}
RUN_STEPS = 500
# Gradient check: a parameter vector up to COORDINATES long is checked along every
# coordinate, a longer one along DIRECTIONS random unit vectors, and both along the
# gradient; every parameter leaf along its own part of the gradient besides, at that
# part's scale (the first layers of a deep sigmoid network have gradients far below
# the last one's).
COORDINATES = 16
DIRECTIONS = 4
# Step of the central differences, relative to the size of the point's entries: near
# the cube root of float64's epsilon, where truncation and rounding error balance.
STEP = 1e-5
# A difference quotient may be off by RTOL of the gradient's size (a wrong derivative
# is off by O(1) of it), plus its rounding error, ROUNDING x epsilon x |f| / h, plus its
# truncation error, estimated by how far the quotient at 2h lies from the one at h.
RTOL = 1e-4
ROUNDING = 1e2


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check of a problem: its name, whether it passed, and one line saying why."""

    name: str
    passed: bool
    message: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.message}"


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _key(seed: int) -> jax.Array:
    """The key of the start point of a lane of `seed`: the checks look at the points the
    runs start from."""
    return start_key(seed)


def _batch(problem: Problem, data, seed: int):
    """The data the loss is checked on: a sampled minibatch, else the full data."""
    return problem.sample_batch(data, _key(seed)) if problem.sample_batch is not None else data


def _same(a, b) -> bool:
    """Two pytrees of the same structure and bit-identical leaves."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _dim(problem: Problem, data) -> str:
    size = ravel_pytree(problem.init(_key(SEEDS[0])))[0].size
    if size != problem.dim:
        raise AssertionError(f"dim={problem.dim}, but init returns {size} parameters")
    return f"{size} parameters"


def _finite_loss(problem: Problem, data) -> str:
    params = problem.init(_key(SEEDS[0]))
    places = {"the full data": data}
    if problem.stochastic:
        places["a minibatch"] = _batch(problem, data, SEEDS[0])
    values = []
    for where, batch in places.items():
        value = jnp.asarray(problem.loss(params, batch))
        if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
            raise AssertionError(
                f"the loss on {where} is {value.dtype} of shape {value.shape}, not a float scalar"
            )
        if not np.isfinite(float(value)):
            raise AssertionError(f"the loss at the start point on {where} is {float(value)}")
        values.append(f"{float(value):.6g} on {where}")
    return "at the start point: " + ", ".join(values)


def _determinism(problem: Problem, data) -> str:
    if not _same(problem.init(_key(SEEDS[0])), problem.init(_key(SEEDS[0]))):
        raise AssertionError("init(key) gives a different start point for the same key")
    if not problem.stochastic:
        return "the same key gives the same start point"
    if not _same(_batch(problem, data, SEEDS[0]), _batch(problem, data, SEEDS[0])):
        raise AssertionError("sample_batch(data, key) gives a different minibatch for the same key")
    return "the same key gives the same start point and minibatch"


def _float64(tree):
    return jax.tree.map(
        lambda x: (
            jnp.asarray(x, jnp.float64) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x
        ),
        tree,
    )


def _directions(params, key: jax.Array) -> tuple[jax.Array, list[str], jax.Array, list[str]]:
    """What to differentiate along, flat: fixed unit directions (every coordinate, or a
    few random ones) with a name each, and a 0/1 mask per parameter leaf (none for a
    single leaf) with its name."""
    flat = ravel_pytree(params)[0]
    n = flat.size
    if n <= COORDINATES:
        fixed, names = jnp.eye(n), [f"coordinate {i}" for i in range(n)]
    else:
        fixed = jax.random.normal(key, (DIRECTIONS, n), jnp.float64)
        fixed = fixed / jnp.linalg.norm(fixed, axis=1, keepdims=True)
        names = [f"random direction {i}" for i in range(DIRECTIONS)]
    paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    if len(paths) == 1:
        return fixed, names, jnp.zeros((0, n)), []
    leaves = [jnp.zeros_like(leaf) for _, leaf in paths]
    masks = jnp.stack(
        [
            ravel_pytree(
                jax.tree.unflatten(treedef, [*leaves[:i], jnp.ones_like(leaf), *leaves[i + 1 :]])
            )[0]
            for i, leaf in enumerate(leaves)
        ]
    )
    return (
        fixed,
        names,
        masks,
        [f"the gradient of leaf {jax.tree_util.keystr(p)}" for p, _ in paths],
    )


def gradient_errors(problem: Problem, params, batch, key: jax.Array) -> list[tuple[str, float]]:
    """jax.grad of the loss against float64 central differences at `params` on `batch`.

    Along each unit direction v (every coordinate, or DIRECTIONS random ones; the
    gradient's own direction; and, for a tree of several leaves, each leaf's part of the
    gradient), the quotient D(h) = (f(x + h v) - f(x - h v)) / 2h is compared with
    v . grad. The step h is STEP times the size of x's largest entry (at least STEP).
    The error allowed is RTOL times the norm of the gradient on v's support (the whole
    gradient, or the coordinate's or the leaf's part), plus the quotient's rounding
    error, plus |D(2h) - D(h)|, a bound on its truncation error (3/4 of D(2h) - D(h) is
    D(h)'s own to leading order) that also absorbs a relu's kink within 2h of x. So a
    leaf whose gradient is tiny beside the others' is checked at its own scale.
    Returns (direction, error / error allowed) per direction: the gradient is right
    where every ratio is at most 1. Call it with jax_enable_x64 on (`check_problem`
    does).
    """
    params, batch = _float64(params), _float64(batch)
    flat, unravel = ravel_pytree(params)
    fixed, names, masks, leaf_names = _directions(params, key)

    def f(x):
        return problem.loss(unravel(x), batch)

    def unit(v):
        norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
        return jnp.where(norm > 0, v / jnp.where(norm > 0, norm, 1.0), 0.0)

    def ratios(flat):
        value, grad = jax.value_and_grad(f)(flat)
        directions = jnp.concatenate([fixed, unit(grad)[None], unit(masks * grad)])
        h = STEP * jnp.maximum(1.0, jnp.max(jnp.abs(flat)))
        steps = jnp.array([h, -h, 2 * h, -2 * h])
        values = jax.vmap(jax.vmap(f))(flat + steps[:, None, None] * directions[None])
        near = (values[0] - values[1]) / (2 * h)
        far = (values[2] - values[3]) / (4 * h)
        support = jnp.sqrt((directions != 0) @ grad**2)
        size = jnp.maximum(jnp.max(jnp.abs(values), axis=0), jnp.abs(value))
        allowed = (
            RTOL * support + ROUNDING * jnp.finfo(jnp.float64).eps * size / h + jnp.abs(far - near)
        )
        error = jnp.abs(near - directions @ grad)
        return jnp.where(error == 0, 0.0, error / jnp.where(allowed > 0, allowed, jnp.inf))

    names = [*names, "the gradient", *leaf_names]
    return list(zip(names, (float(r) for r in jax.jit(ratios)(flat)), strict=True))


def _gradient(problem: Problem, data) -> str:
    with jax.enable_x64(True):
        ratios = [
            (f"{direction} at the start point of seed {seed}", ratio)
            for seed in SEEDS
            for direction, ratio in gradient_errors(
                problem, problem.init(_key(seed)), _batch(problem, data, seed), _key(seed)
            )
        ]
    where, ratio = max(ratios, key=lambda r: np.inf if np.isnan(r[1]) else r[1])
    if not ratio <= 1:
        raise AssertionError(
            f"jax.grad differs from central differences along {where}: error {ratio:.3g}x "
            "the error allowed"
        )
    return f"jax.grad matches float64 central differences (worst error {ratio:.2g}x the allowed)"


def _f_star(problem: Problem, data) -> str:
    if problem.f_star is None:
        return "f_star is not known (best_found): a suite takes the lowest value found"
    steps = min(problem.steps, RUN_STEPS)
    runs = RUNS | ({} if problem.stochastic else DETERMINISTIC_RUNS)
    lowest, by = np.inf, ""
    for optimizer, learning_rates in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warn_below_f_star's warning: failed below
            result = run_sweep(problem, optimizer, list(learning_rates), [SEEDS[0]], steps)
        losses = np.where(np.isfinite(result.losses), result.losses, np.inf)
        if losses.min() < lowest:
            lane = int(np.argmin(losses.min(axis=1)))
            lowest, by = float(losses.min()), f"{optimizer} (lr {learning_rates[lane]:g})"
    tried = ", ".join(f"{o} (lr {', '.join(f'{x:g}' for x in lrs)})" for o, lrs in runs.items())
    if lowest < problem.f_star - problem.target:
        raise AssertionError(
            f"{by} reaches loss {lowest:.6g} from the start point, below f_star="
            f"{problem.f_star:.6g} by more than the target {problem.target:g}"
        )
    return (
        f"{steps} steps of {tried} from the start point: lowest loss {lowest:.6g} "
        f">= f_star - target = {problem.f_star - problem.target:.6g}"
    )


QUICK = {"dim": _dim, "finite loss": _finite_loss, "determinism": _determinism}
FULL = QUICK | {"gradient": _gradient, "f_star": _f_star}


def check_problem(problem: Problem, quick: bool = False) -> list[CheckResult]:
    """Every check of `problem` (QUICK's only with quick=True: nothing compiled or run),
    in order; a check that raises fails with the error's first line."""
    try:
        data = problem.data()
    except Exception as error:
        message = f"data() raises {_one_line(error)}"
        return [CheckResult(name, False, message) for name in (QUICK if quick else FULL)]
    results = []
    for name, check in (QUICK if quick else FULL).items():
        try:
            results.append(CheckResult(name, True, check(problem, data)))
        except AssertionError as error:
            results.append(CheckResult(name, False, str(error)))
        except Exception as error:
            results.append(CheckResult(name, False, _one_line(error)))
    return results


def check_command(target: str) -> int:
    """`bench check TARGET`: prints one PASS/FAIL line per check of the problem TARGET
    names; 0 when every check passes, else 1. Raises ValueError (one line) for a target
    that cannot be loaded."""
    problem, _ = plugins.load_problem(target)
    results = check_problem(problem)
    for result in results:
        print(result.line())
    return 0 if all(r.passed for r in results) else 1
