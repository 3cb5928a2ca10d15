"""Turns sweep results into tidy pandas tables: one row per lane, one row per curve point."""

import numpy as np
import pandas as pd

from bench.runner import SweepResult

# A lane has diverged when its loss is not finite or ends above this multiple of its start.
BLOWUP_FACTOR = 10.0


def log_step_grid(steps: int, points: int = 100) -> np.ndarray:
    """Step indices 0..steps, every step for short runs, else about `points` log-spaced ones."""
    if steps + 1 <= points:
        return np.arange(steps + 1)
    grid = np.unique(np.round(np.logspace(0, np.log10(steps), points)).astype(int))
    return np.concatenate([[0], grid])


def steps_to_target(suboptimality: np.ndarray, target: float) -> np.ndarray:
    """First step whose suboptimality is <= target, per lane; -1 where never reached."""
    reached = suboptimality <= target
    return np.where(reached.any(axis=1), reached.argmax(axis=1), -1)


def diverged(losses: np.ndarray) -> np.ndarray:
    """Per lane: any non-finite loss, or a final loss above BLOWUP_FACTOR x the initial one."""
    finite = np.isfinite(losses).all(axis=1)
    initial, final = losses[:, 0], losses[:, -1]
    blown_up = final > BLOWUP_FACTOR * np.maximum(np.abs(initial), 1e-12)
    return ~finite | blown_up


def runs_frame(result: SweepResult) -> pd.DataFrame:
    """One row per lane with its hyperparameters, seed and outcome."""
    suboptimality = result.losses - result.f_star
    with np.errstate(invalid="ignore"):
        best = np.nanmin(np.where(np.isfinite(result.losses), result.losses, np.nan), axis=1)
    frame = pd.DataFrame(
        {
            "problem": result.problem,
            "optimizer": result.optimizer,
            **result.hparams,
            "seed": result.seeds,
            "final_loss": result.losses[:, -1],
            "best_loss": best,
            "final_suboptimality": suboptimality[:, -1],
            "best_suboptimality": best - result.f_star,
            "final_grad_norm": result.grad_norms[:, -1],
            "steps_to_target": steps_to_target(suboptimality, result.target),
            "diverged": diverged(result.losses),
            **result.metrics,
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
        }
    )
    return frame


def _curve_rows(result: SweepResult, keep: np.ndarray, steps: np.ndarray) -> dict:
    """The key columns of a tidy curve table: lane identity x recorded step."""
    return {
        "problem": result.problem,
        "optimizer": result.optimizer,
        **{k: np.repeat(v[keep], len(steps)) for k, v in result.hparams.items()},
        "seed": np.repeat(result.seeds[keep], len(steps)),
        "step": np.tile(steps, int(keep.sum())),
    }


def curves_frame(result: SweepResult, points: int = 100, keep=None) -> pd.DataFrame:
    """Tidy loss and gradient-norm curves: one row per (kept lane, recorded step)."""
    keep = np.ones(result.lanes, bool) if keep is None else np.asarray(keep, bool)
    steps = log_step_grid(result.losses.shape[1] - 1, points)
    return pd.DataFrame(
        {
            **_curve_rows(result, keep, steps),
            "loss": result.losses[keep][:, steps].ravel(),
            "grad_norm": result.grad_norms[keep][:, steps].ravel(),
        }
    )


def layer_grad_norms_frame(result: SweepResult, points: int = 100, keep=None) -> pd.DataFrame:
    """Tidy per-layer gradient norms: one row per (kept lane, recorded step, layer)."""
    keep = np.ones(result.lanes, bool) if keep is None else np.asarray(keep, bool)
    steps = log_step_grid(result.losses.shape[1] - 1, points)
    norms = result.layer_grad_norms[keep][:, steps]  # (lanes, steps, layers)
    layers = norms.shape[-1]
    rows = {
        k: np.repeat(v, layers) if isinstance(v, np.ndarray) else v
        for k, v in _curve_rows(result, keep, steps).items()
    }
    return pd.DataFrame(
        {
            **rows,
            "layer": np.tile(np.arange(layers), len(rows["step"]) // layers),
            "grad_norm": norms.ravel(),
        }
    )


def paths_frame(result: SweepResult, keep=None) -> pd.DataFrame:
    """The iterates (x, y) of kept lanes of a 2-D problem at every step."""
    keep = np.ones(result.lanes, bool) if keep is None else np.asarray(keep, bool)
    steps = np.arange(result.paths.shape[1])
    paths = result.paths[keep]
    return pd.DataFrame(
        {
            **_curve_rows(result, keep, steps),
            "x": paths[..., 0].ravel(),
            "y": paths[..., 1].ravel(),
        }
    )
