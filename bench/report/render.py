"""Everything derived from a results folder's CSV files: summary, TABLES.md and plots.

`python -m bench plot DIR` calls `render(DIR)`; `python -m bench run` calls it on the
folder it is building. Nothing here reruns a sweep. The raw tables are checked against
their schema first; everything is drawn into a hidden folder inside DIR and moved into
place only when all of it is done, so a damaged table or a failure leaves DIR as it was.
A figure that cannot be drawn is skipped with one line saying why.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.analysis import budget, stats, tuning
from bench.report import page, plots, tables
from bench.results import schema
from bench import spec
from bench.results.files import write_csv, write_text
from optimizers import OPTIMIZERS
from problems import MODELS, PROBLEMS, model


class MissingResults(Exception):
    """The folder has no runs.csv.gz or curves.csv.gz to draw from."""


def _slug(problem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in problem)


def _cost(folder: Path, runs: pd.DataFrame, cost: str | None, log) -> str:
    """The cost axis to tune and rank by: `cost`, else the one meta.json records, else the
    default; "steps" (said on `log`) when runs.csv.gz does not record the axis."""
    if cost is None:
        try:
            cost = json.loads((folder / "meta.json").read_text())["spec"]["cost"]
        except (OSError, ValueError, KeyError, TypeError):  # none, damaged or older
            cost = tuning.DEFAULT_COST
    recorded = tuning.recorded_cost(runs, cost)
    if recorded != cost:
        print(f"runs.csv.gz records no {tuning.COSTS[cost]}: tuning and ranking by steps", file=log)
    return recorded


def _scale(folder: Path) -> str:
    """The model families' size preset the folder was run at (meta.json), else cpu."""
    try:
        return json.loads((folder / "meta.json").read_text())["spec"].get("scale", "cpu")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "cpu"


def _dims(summary: pd.DataFrame, facts: pd.DataFrame | None, scale: str = "cpu") -> dict[str, int]:
    """The parameter count of every problem of the summary that is known: from problems.csv,
    else from the built-in registries (a model family at `scale`)."""
    names = summary["problem"].unique()
    dims = {name: PROBLEMS[name].dim for name in names if name in PROBLEMS}
    dims |= {name: model(name, scale).dim for name in names if name in MODELS}
    if facts is not None:
        dims |= dict(zip(facts["problem"], facts["dim"].astype(int), strict=True))
    return dims


def _problem_figures(folder: Path, problem_figures: bool | None) -> bool:
    """Whether to draw the overview and each problem's figures: `problem_figures`, else
    what meta.json's spec says, else yes."""
    if problem_figures is not None:
        return problem_figures
    try:
        return bool(json.loads((folder / "meta.json").read_text())["spec"]["problem_figures"])
    except (OSError, ValueError, KeyError, TypeError):  # none, damaged or older
        return True


def _figures(
    raw: dict,
    summary: pd.DataFrame,
    budgets: pd.DataFrame,
    cost: str,
    at_taus,
    every: bool,
    scale: str = "cpu",
) -> list:
    """(file name, draw(path)) of every figure the tables allow, in drawing order; the data
    profiles at each tau where `at_taus` gives their costs (`tuning.costs_at_taus`), the
    overview and the figures of each problem only when `every`."""
    runs, curves, paths, norms = (raw[n] for n in ("runs", "curves", "paths", "layer_grad_norms"))
    dims = _dims(summary, raw["problems"], scale)
    scored = budget.trial_scores(runs, cost)
    spaces = {
        name: OPTIMIZERS[name].space()
        for name in summary["optimizer"].unique()
        if name in OPTIMIZERS
    }
    figures = [
        ("performance_profile.png", lambda path: plots.performance_profile(summary, path, cost)),
        ("data_profile.png", lambda path: plots.data_profile(summary, dims, path, cost)),
        ("budget_curves.png", lambda path: plots.budget_curves(budgets, summary, path)),
    ]
    if at_taus:
        figures.append(
            (
                "data_profiles.png",
                lambda path: plots.data_profiles(at_taus, dims, summary, path, cost),
            )
        )
    if not every:
        return figures
    figures.insert(0, ("convergence.png", lambda path: plots.overview(curves, summary, runs, path)))
    for problem in sorted(summary["problem"].unique()):
        figures += [
            (
                f"plots/convergence_{_slug(problem)}.png",
                lambda path, p=problem: plots.convergence(curves, summary, runs, path, p),
            ),
            (
                f"plots/sensitivity_{_slug(problem)}.png",
                lambda path, p=problem: plots.sensitivity(runs, summary, path, p, cost),
            ),
            (
                f"plots/budget_{_slug(problem)}.png",
                lambda path, p=problem: plots.budget_curves(budgets, summary, path, p),
            ),
        ]
        if len(schema.hyperparameters(runs)) > 1:  # something besides the learning rate swept
            figures.append(
                (
                    f"plots/heat_map_{_slug(problem)}.png",
                    lambda path, p=problem: plots.heat_maps(scored, summary, spaces, path, p),
                )
            )
    for problem in [] if paths is None else sorted(paths["problem"].unique()):
        if problem in PROBLEMS:  # the contour needs the loss function itself
            figures.append(
                (
                    f"plots/paths_{_slug(problem)}.png",
                    lambda path, p=PROBLEMS[problem]: plots.paths(paths, summary, runs, p, path),
                )
            )
    for problem in [] if norms is None else sorted(norms["problem"].unique()):
        figures.append(
            (
                f"plots/grad_norms_{_slug(problem)}.png",
                lambda path, p=problem: plots.layer_grad_norms(norms, summary, path, p),
            )
        )
    return figures


def _taus(folder: Path) -> tuple[float, ...]:
    """The data-profile taus of meta.json's spec, else the default ones."""
    try:
        return tuple(json.loads((folder / "meta.json").read_text())["spec"]["taus"])
    except (OSError, ValueError, KeyError, TypeError):  # none, damaged or older
        return spec.TAUS


def render(
    folder: str | Path,
    log=None,
    cost: str | None = None,
    problem_figures: bool | None = None,
    taus: tuple[float, ...] | None = None,
    scale: str | None = None,
) -> list[Path]:
    """Writes summary.csv, budget_curves.csv, TABLES.md, every plot and index.html (the
    page of them all, bench/page.py) under `folder`; returns the PNG paths.

    Where problems.csv resolves problems' f* (fixed-start problems), TABLES.md and
    data_profiles.png also give the data profile at each tau (default: meta.json's).
    `problem_figures`: draw the overview and the figures of each problem (default:
    meta.json's choice, else yes).

    Raises MissingResults without runs.csv.gz or curves.csv.gz, schema.DamagedTable for a
    table that does not match its schema, tuning.MissingEvalLanes when a setting tuned
    by `cost` has no eval lanes. `log`: where skipped figures are reported (default
    stderr). `cost`: the axis of tuning and ranking (default: the folder's own, from
    meta.json). `scale`: the model families' size preset (default: meta.json's, else cpu).
    """
    folder = Path(folder)
    log = sys.stderr if log is None else log
    raw = {name: schema.read(folder, name) for name in schema.COLUMNS}
    if raw["runs"] is None or raw["curves"] is None:
        raise MissingResults(f"{folder} holds no runs.csv.gz and curves.csv.gz to plot from")
    skipped = raw["skipped"]
    if skipped is None:
        skipped = pd.DataFrame(columns=["problem", "optimizer", "reason"])
    cost = _cost(folder, raw["runs"], cost, log)
    summary = stats.with_intervals(tuning.summarize(raw["runs"], cost), raw["runs"])
    budgets = budget.budget_curves(raw["runs"], cost)
    facts = raw["problems"]
    at_taus = {}
    if facts is not None and facts["f0"].notna().any():
        taus = _taus(folder) if taus is None else taus
        at_taus = tuning.costs_at_taus(raw["curves"], raw["runs"], facts, taus)
    every = _problem_figures(folder, problem_figures)
    draft = Path(tempfile.mkdtemp(dir=folder, prefix=".render."))
    try:
        write_csv(summary, draft / "summary.csv")
        write_csv(budgets, draft / "budget_curves.csv")
        document = tables.document(summary, raw["runs"], skipped, cost, facts, at_taus)
        write_text(document, draft / "TABLES.md")
        scale = scale or _scale(folder)
        for name, draw in _figures(raw, summary, budgets, cost, at_taus, every, scale):
            try:
                draw(draft / name)
            except Exception as error:  # one figure that cannot be drawn costs only itself
                plots.plt.close("all")
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                print(f"skipped {name}: {type(error).__name__}: {reason}", file=log)
        page.write(draft, summary, raw["runs"], cost, scale)
        made = sorted(p.relative_to(draft) for p in draft.rglob("*") if p.is_file())
        for name in made:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(draft / name, folder / name)
    finally:
        shutil.rmtree(draft, ignore_errors=True)
    return [folder / name for name in made if name.suffix == ".png"]
