"""Everything derived from a results folder's CSV files: summary, TABLES.md and plots.

`python -m bench plot DIR` calls `render(DIR)`; `python -m bench run` calls it on the
folder it is building. Nothing here reruns a sweep.
"""

from pathlib import Path

import pandas as pd

from bench import plots, tables, tuning
from bench.io import write_csv, write_text
from problems import PROBLEMS


class MissingResults(Exception):
    """The folder has no runs.csv or curves.csv to draw from."""


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def _slug(problem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in problem)


def render(folder: str | Path) -> list[Path]:
    """Writes summary.csv, TABLES.md and every plot under `folder`; returns the PNG paths."""
    folder = Path(folder)
    runs, curves = _read(folder, "runs"), _read(folder, "curves")
    if runs is None or curves is None:
        raise MissingResults(f"{folder} holds no runs.csv and curves.csv to plot from")
    skipped = _read(folder, "skipped")
    if skipped is None:
        skipped = pd.DataFrame(columns=["problem", "optimizer", "reason"])
    summary = tuning.summarize(runs)
    write_csv(summary, folder / "summary.csv")
    write_text(tables.document(summary, runs, skipped), folder / "TABLES.md")

    figures = folder / "plots"
    made = [folder / "convergence.png", folder / "performance_profile.png"]
    plots.overview(curves, summary, runs, made[0])
    plots.performance_profile(summary, made[1])
    for problem in sorted(summary["problem"].unique()):
        slug = _slug(problem)
        made.append(figures / f"convergence_{slug}.png")
        plots.convergence(curves, summary, runs, made[-1], problem)
        made.append(figures / f"sensitivity_{slug}.png")
        plots.sensitivity(runs, summary, made[-1], problem)
    paths = _read(folder, "paths")
    for problem in [] if paths is None else sorted(paths["problem"].unique()):
        if problem in PROBLEMS:  # the contour needs the loss function itself
            made.append(figures / f"paths_{_slug(problem)}.png")
            plots.paths(paths, summary, runs, PROBLEMS[problem], made[-1])
    norms = _read(folder, "layer_grad_norms")
    for problem in [] if norms is None else sorted(norms["problem"].unique()):
        made.append(figures / f"grad_norms_{_slug(problem)}.png")
        plots.layer_grad_norms(norms, summary, made[-1], problem)
    return [path for path in made if path.exists()]
