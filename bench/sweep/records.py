"""Turns sweep results into tidy pandas tables: one row per lane, one row per curve point."""

import numpy as np
import pandas as pd

from bench.sweep.runner import SweepResult, rounded_time

# A lane has diverged when its loss is not finite or ends above this multiple of its start.
BLOWUP_FACTOR = 10.0


# The runs columns of the cost of lasting success at a relative level, by axis and the
# level's name (declared in `bench.results.schema`, `level_column`).
LEVEL_COLUMN = "{axis}_to_tau_{level}"


def first_reached(suboptimality: np.ndarray, target: float) -> np.ndarray:
    """Index of the first record point whose suboptimality is <= target, per lane; -1 where
    never reached."""
    reached = suboptimality <= target
    return np.where(reached.any(axis=1), reached.argmax(axis=1), -1)


def lasting_reached(suboptimality: np.ndarray, target: float) -> np.ndarray:
    """Index of the record point from which the suboptimality stays <= target to the last
    one, per lane; -1 where the last is above it (or NaN)."""
    above = ~(suboptimality <= target)
    points = suboptimality.shape[1]
    last_above = np.where(above.any(axis=1), points - 1 - above[:, ::-1].argmax(axis=1), -1)
    return np.where(last_above == points - 1, -1, last_above + 1)


def _costs(result: SweepResult, steps: np.ndarray, grad_evals: np.ndarray, suffix: str) -> dict:
    reached = steps >= 0
    return {
        f"steps_{suffix}": steps.astype(np.int64),
        f"grad_evals_{suffix}": np.where(reached, grad_evals, -1),
        f"seconds_{suffix}": np.where(reached, steps * result.seconds_per_step, np.nan),
    }


def _at_records(result: SweepResult, target: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`SweepResult.reached`'s "first" and "lasting" for one target, judged at the record
    points: (step, gradient evaluations) of the first at the target, and of the one after
    the last above it; -1 where never."""
    suboptimality = result.losses - result.f_star
    lanes = np.arange(result.lanes)
    found = {
        "first": first_reached(suboptimality, target),
        "lasting": lasting_reached(suboptimality, target),
    }
    return {
        kind: (
            np.where(at >= 0, result.record_steps[np.maximum(at, 0)], -1),
            result.grad_evals[lanes, np.maximum(at, 0)],
        )
        for kind, at in found.items()
    }


def to_target(result: SweepResult) -> dict[str, np.ndarray]:
    """Per lane, the cost of lasting success (`*_to_target`: from the first step that stays
    at the target to the end of the budget) and of the first hit (`*_to_first_hit`), on
    each axis: steps and gradient evaluations (-1 where never) and seconds (NaN where
    never) (docs/method.md, "f* and the target"); then the steps and gradient evaluations
    of lasting success at each relative level the sweep judged (`LEVEL_COLUMN`; NaN on
    every lane for a level the dtype cannot resolve).
    Exact to the step where the sweep judged every step (`SweepResult.reached`), else at
    the record points, where every rule is judged alike."""
    levels = result.levels or {}
    if result.reached is not None:
        (first_steps, first_evals), (steps, evals) = (
            result.reached["first"],
            result.reached["lasting"],
        )
        first, lasting = (first_steps[:, 0], first_evals[:, 0]), (steps[:, 0], evals[:, 0])
        at_levels = {name: (steps[:, i + 1], evals[:, i + 1]) for i, name in enumerate(levels)}
    else:
        own = _at_records(result, result.target)
        first, lasting = own["first"], own["lasting"]
        at_levels = {
            name: _at_records(result, target)["lasting"] for name, target in levels.items()
        }
    columns = {
        **_costs(result, np.asarray(lasting[0]), np.asarray(lasting[1]), "to_target"),
        **_costs(result, np.asarray(first[0]), np.asarray(first[1]), "to_first_hit"),
    }
    for name, target in levels.items():
        steps, evals = at_levels[name]
        for axis, values in (("steps", steps), ("grad_evals", evals)):
            if np.isnan(target):
                column = np.full(result.lanes, np.nan)
            else:
                column = np.where(np.asarray(steps) >= 0, np.asarray(values, np.float64), -1.0)
            columns[LEVEL_COLUMN.format(axis=axis, level=name)] = column
    return columns


def diverged(losses: np.ndarray) -> np.ndarray:
    """Per lane: any non-finite loss, or a final loss above BLOWUP_FACTOR x the initial one."""
    finite = np.isfinite(losses).all(axis=1)
    initial, final = losses[:, 0], losses[:, -1]
    blown_up = final > BLOWUP_FACTOR * np.maximum(np.abs(initial), 1e-12)
    return ~finite | blown_up


def runs_frame(result: SweepResult) -> pd.DataFrame:
    """One row per lane with its trial, hyperparameters, seed and outcome."""
    suboptimality = result.losses - result.f_star
    with np.errstate(invalid="ignore"):
        best = np.nanmin(np.where(np.isfinite(result.losses), result.losses, np.nan), axis=1)
    frame = pd.DataFrame(
        {
            "problem": result.problem,
            "optimizer": result.optimizer,
            "trial": result.trials,
            **result.hparams,
            "seed": result.seeds,
            "start_loss": result.losses[:, 0],
            "final_loss": result.losses[:, -1],
            "best_loss": best,
            "final_suboptimality": suboptimality[:, -1],
            "best_suboptimality": best - result.f_star,
            "final_grad_norm": result.grad_norms[:, -1],
            "final_grad_evals": result.grad_evals[:, -1],
            **to_target(result),
            "diverged": diverged(result.losses),
            **result.metrics,
            "compile_seconds": rounded_time(result.compile_seconds),
            "run_seconds": rounded_time(result.run_seconds),
            "seconds_per_step": result.seconds_per_step,
        }
    )
    return frame


def _curve_rows(result: SweepResult, keep: np.ndarray) -> dict:
    """The key columns of a tidy curve table: lane identity x record point."""
    steps = result.record_steps
    return {
        "problem": result.problem,
        "optimizer": result.optimizer,
        **{
            k: np.repeat(v[keep], len(steps))
            for k, v in {"trial": result.trials, **result.hparams}.items()
        },
        "seed": np.repeat(result.seeds[keep], len(steps)),
        "step": np.tile(steps, int(keep.sum())),
    }


def _kept(result: SweepResult, keep) -> np.ndarray:
    return np.ones(result.lanes, bool) if keep is None else np.asarray(keep, bool)


def curves_frame(result: SweepResult, keep=None) -> pd.DataFrame:
    """Loss curves of the kept lanes, summarised over their seeds as the figures draw them:
    one row per (trial, record point) with the cost of reaching it (median
    gradient evaluations, seconds) and the median and quartiles of the loss over the seeds
    where it is finite (a diverged seed leaves a gap)."""
    keep = _kept(result, keep)
    rows = _curve_rows(result, keep)
    lanes = pd.DataFrame(
        {
            **rows,
            "grad_evals": result.grad_evals[keep].ravel(),
            "seconds": rows["step"] * result.seconds_per_step,
            "loss": np.where(np.isfinite(result.losses), result.losses, np.nan)[keep].ravel(),
        }
    )
    by = lanes.groupby(["problem", "optimizer", "trial", *result.hparams, "step"], sort=False)
    # pandas-stubs take no list of quantiles here; pandas takes any array-like
    quartiles = by["loss"].quantile([0.25, 0.75]).unstack()  # pyright: ignore[reportArgumentType]
    frame = by[["grad_evals", "seconds", "loss"]].median()
    frame["loss_q25"], frame["loss_q75"] = quartiles[0.25], quartiles[0.75]
    return frame.reset_index()


def layer_grad_norms_frame(result: SweepResult, keep=None) -> pd.DataFrame:
    """Tidy per-layer gradient norms: one row per (kept lane, record point, layer)."""
    if result.layer_grad_norms is None:
        raise ValueError(f"the sweep of {result.problem} recorded no per-layer gradient norms")
    keep = _kept(result, keep)
    norms = result.layer_grad_norms[keep]  # (lanes, points, layers)
    layers = norms.shape[-1]
    rows = {
        k: np.repeat(v, layers) if isinstance(v, np.ndarray) else v
        for k, v in _curve_rows(result, keep).items()
    }
    return pd.DataFrame(
        {
            **rows,
            "layer": np.tile(np.arange(layers), len(rows["step"]) // layers),
            "grad_norm": norms.ravel(),
        }
    )


def paths_frame(result: SweepResult, keep=None) -> pd.DataFrame:
    """The iterates (x, y) of kept lanes of a 2-D problem at the record points."""
    if result.paths is None:
        raise ValueError(f"the sweep of {result.problem} recorded no iterates (not a 2-D problem)")
    keep = _kept(result, keep)
    paths = result.paths[keep]
    return pd.DataFrame(
        {
            **_curve_rows(result, keep),
            "x": paths[..., 0].ravel(),
            "y": paths[..., 1].ravel(),
        }
    )
