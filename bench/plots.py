"""Matplotlib figures drawn from the CSV tables (never from live results)."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.io import write_atomic  # noqa: E402

# Floor for log-scale suboptimality so that exact zeros stay on the plot.
FLOOR = 1e-16


def _save(fig, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def convergence(curves: pd.DataFrame, tuned: pd.DataFrame, f_stars: dict, path: Path) -> None:
    """One panel per problem: median suboptimality of each tuned optimizer, IQR band."""
    problems = sorted(curves["problem"].unique())
    cols = min(3, len(problems))
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    chosen = curves.merge(tuned[["problem", "optimizer", "learning_rate"]])
    for ax, problem in zip(axes.flat, problems, strict=False):
        for optimizer, group in chosen[chosen["problem"] == problem].groupby("optimizer"):
            gap = (group["loss"] - f_stars[problem]).clip(lower=FLOOR)
            by_step = gap.groupby(group["step"])
            q = by_step.quantile([0.25, 0.5, 0.75]).unstack()
            lr = group["learning_rate"].iloc[0]
            ax.plot(q.index, q[0.5], label=f"{optimizer} (lr={lr:.2g})")
            ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.2)
        ax.set(title=problem, xlabel="step", ylabel="f(x) - f*", yscale="log")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes.flat[len(problems) :]:
        ax.set_visible(False)
    fig.suptitle("Convergence at each optimizer's tuned learning rate (median, IQR over seeds)")
    fig.tight_layout()
    _save(fig, path)


__all__ = ["convergence"]
