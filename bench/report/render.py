"""Everything derived from a results folder's CSV files: summary, ranking, TABLES.md, plots
and index.html.

`python -m bench plot DIR` calls `render(DIR)`; `python -m bench run` calls it on the
folder it is building. Nothing here reruns a sweep. The raw tables are checked against
their schema first, then analysed once (`bench.analysis.analyze`) and every view drawn
from that one analysis; everything is drawn into a hidden folder inside DIR and moved
into place only when all of it is done, so a damaged table or a failure leaves DIR as
it was. A figure that cannot be drawn is skipped with one line saying why.

The views ask no registry: what a problem is comes from problems.csv, and what a folder
does not hold (an optimizer's search space and family, a 2-D problem's loss function,
an older folder's problem facts) from the `Known` the caller gives (`bench.known`).
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis import budget, claims, profiles, tuning
from bench.analysis.analyze import Analysis, analyze, complete_facts
from bench.report import page, plots, tables
from bench.report.format import RUNTIME_TOP, WIN_RATE_TOP, slug
from bench.results import joint, meta, schema
from bench.results.files import DRAFT_PREFIX, write_csv, write_text


class MissingResults(Exception):
    """The folder has no runs.csv.gz or curves.csv.gz to draw from."""


def _nothing(_):
    return None


@dataclass(frozen=True)
class Known:
    """What the caller knows of names a folder holds, beyond the folder (default:
    nothing). facts: problem names -> problems.csv rows for those it knows (an older
    folder's problems); space: optimizer -> its search space; family: optimizer -> the
    module that defines it; problem: name -> the problem (for its loss surface) or None."""

    facts: Callable[[list[str]], pd.DataFrame | None] = _nothing
    space: Callable[[str], dict] = lambda optimizer: {}
    family: Callable[[str], str] = lambda optimizer: ""
    problem: Callable[[str], object] = _nothing


def _cost(folder: Path, runs: pd.DataFrame, cost: str | None, log) -> str:
    """The cost axis to tune and rank by: `cost`, else the one meta.json records, else the
    default; "steps" (said on `log`) when runs.csv.gz does not record the axis."""
    if cost is None:
        cost = meta.spec_field(folder, "cost", tuning.DEFAULT_COST)
    recorded = tuning.recorded_cost(runs, cost)
    if recorded != cost:
        print(f"runs.csv.gz records no {tuning.COSTS[cost]}: tuning and ranking by steps", file=log)
    return recorded


def _left_out_of_data_profiles(analysis: Analysis, log) -> None:
    """One line naming the ranked problems the data profiles leave out (no parameter count)."""
    missing = sorted(set(analysis.ranked["problem"]) - set(analysis.dims))
    if missing:
        print(
            f"data_profile.png leaves out {', '.join(missing)}: no parameter count in problems.csv",
            file=log,
        )


def _levels_not_recorded(analysis: Analysis, log) -> None:
    """One line saying that the folder records no relative levels, where it does not."""
    if not analysis.records_levels:
        print(
            "runs.csv.gz records no relative levels (steps_to_tau_*): tuning and ranking by "
            "each problem's own target",
            file=log,
        )


def _figures(raw: dict, analysis: Analysis, every: bool, known: Known, taus) -> list:
    """(file name, draw(path)) of every figure the tables allow, in drawing order; the data
    profiles at each level of `taus` some problem resolves, the overview and the figures
    of each problem only when `every`."""
    runs, curves, paths, norms = (raw[n] for n in ("runs", "curves", "paths", "layer_grad_norms"))
    summary, ranked, budgets, cost = (
        analysis.summary,
        analysis.ranked,
        analysis.budgets,
        analysis.cost,
    )
    dims = analysis.dims
    order = analysis.ranking["optimizer"].tolist()
    resolved = set().union(*profiles.resolved_levels(ranked).values())
    levels = [name for name, tau in tuning.LEVELS.items() if tau in taus and name in resolved]
    scored = budget.trial_scores(runs, cost)
    spaces = {name: known.space(name) for name in summary["optimizer"].unique()}
    figures = [
        ("performance_profile.png", lambda path: plots.performance_profile(ranked, path, cost)),
        ("data_profile.png", lambda path: plots.data_profile(ranked, dims, path, cost)),
        ("budget_curves.png", lambda path: plots.budget_curves(budgets, summary, path)),
        (
            "runtime_ecdf.png",
            lambda path: plots.runtime_ecdf(analysis.ecdf, order, path, cost, RUNTIME_TOP),
        ),
    ]
    if len(order) > 1:  # a win rate compares two rules
        figures.append(
            ("win_rate.png", lambda path: plots.win_rate(analysis.win_rate, path, WIN_RATE_TOP))
        )
    if levels:
        figures.append(
            (
                "data_profiles.png",
                lambda path: plots.data_profiles(levels, dims, ranked, path, cost),
            )
        )
    if not every:
        return figures
    figures.insert(0, ("convergence.png", lambda path: plots.overview(curves, summary, runs, path)))
    for problem in sorted(summary["problem"].unique()):
        figures += [
            (
                f"plots/convergence_{slug(problem)}.png",
                lambda path, p=problem: plots.convergence(curves, summary, runs, path, p),
            ),
            (
                f"plots/sensitivity_{slug(problem)}.png",
                lambda path, p=problem: plots.sensitivity(runs, summary, path, p, cost),
            ),
            (
                f"plots/budget_{slug(problem)}.png",
                lambda path, p=problem: plots.budget_curves(budgets, summary, path, p),
            ),
        ]
        if len(schema.hyperparameters(runs)) > 1:  # something besides the learning rate swept
            figures.append(
                (
                    f"plots/heat_map_{slug(problem)}.png",
                    lambda path, p=problem: plots.heat_maps(scored, summary, spaces, path, p),
                )
            )
    for problem in [] if paths is None else sorted(paths["problem"].unique()):
        loss_of = known.problem(problem)
        if loss_of is not None:  # the contour needs the loss function itself
            figures.append(
                (
                    f"plots/paths_{slug(problem)}.png",
                    lambda path, p=loss_of: plots.paths(paths, summary, runs, p, path),
                )
            )
    for problem in [] if norms is None else sorted(norms["problem"].unique()):
        figures.append(
            (
                f"plots/grad_norms_{slug(problem)}.png",
                lambda path, p=problem: plots.layer_grad_norms(norms, summary, path, p),
            )
        )
    return figures


# The derived tables of a row per pair (and budget or instance), written gzip-compressed
# (a suite of a hundred problems and a hundred rules holds tens of thousands of pairs),
# by their plain names: a render removes a plain copy an earlier render left.
SUPERSEDED = ("budget_curves.csv", "runtime_ecdf.csv", "ert.csv")


def render(
    folder: str | Path,
    log=None,
    cost: str | None = None,
    problem_figures: bool | None = None,
    taus: tuple[float, ...] | None = None,
    known: Known | None = None,
    reference: str | None = None,
) -> list[Path]:
    """Writes summary.csv, ranking.csv, head_to_head.csv, robustness.csv,
    budget_curves.csv.gz, the runtime views' runtime_ecdf.csv.gz, ert.csv.gz, win_rate.csv,
    informativeness.csv and (where the problems fall in more than one group) groups.csv,
    TABLES.md, every plot and index.html (the page of them all,
    bench/report/page.py) under `folder`; returns the paths of every file it wrote.

    Where the runs record the relative levels, data_profiles.png draws a data profile at
    each level whose tau is one of `taus` (default: meta.json's, else `profiles.TAUS`).
    `problem_figures`: draw the overview and the figures of each problem (default:
    meta.json's choice, else yes). `known`: what the caller knows beyond the folder
    (default: nothing; `bench.known.known()` asks the registries). `reference`: the rule
    of the head-to-head comparisons (default: adamw where ranked, `claims.reference_of`).

    Raises MissingResults without runs.csv.gz or curves.csv.gz, schema.DamagedTable for a
    table that does not match its schema, tuning.MissingEvalLanes when a setting tuned
    by `cost` has no eval lanes, claims.UnknownReference for a `reference` not ranked.
    `log`: where skipped figures are reported (default stderr). `cost`: the axis of
    tuning and ranking (default: the folder's own, from meta.json).
    """
    folder = Path(folder)
    log = sys.stderr if log is None else log
    known = Known() if known is None else known
    found = joint.members(folder)  # a joint folder draws its members' tables
    raw = dict.fromkeys(schema.COLUMNS) | (
        joint.tables(found)
        if found is not None
        else {name: schema.read(folder, name) for name in schema.COLUMNS}
    )
    if raw["runs"] is None or raw["curves"] is None:
        raise MissingResults(f"{folder} holds no runs.csv.gz and curves.csv.gz to plot from")
    skipped = raw["skipped"]
    if skipped is None:
        skipped = pd.DataFrame(columns=["problem", "optimizer", "reason"])
    cost = _cost(folder, raw["runs"], cost, log)
    names = sorted(raw["runs"]["problem"].unique())
    facts = complete_facts(raw["problems"], known.facts(names))
    taus = tuple(meta.spec_field(folder, "taus", profiles.TAUS)) if taus is None else taus
    analysis = analyze(raw, cost, facts, reference)
    _levels_not_recorded(analysis, log)
    _left_out_of_data_profiles(analysis, log)
    every = (
        meta.spec_field(folder, "problem_figures", True)
        if problem_figures is None
        else (problem_figures)
    )
    draft = Path(tempfile.mkdtemp(dir=folder, prefix=DRAFT_PREFIX))
    interrupted = _Interrupts()
    try:
        write_csv(analysis.summary, draft / "summary.csv")
        write_csv(analysis.ranking, draft / "ranking.csv")
        write_csv(analysis.head_to_head, draft / "head_to_head.csv")
        write_csv(claims.robustness_table(analysis.robustness), draft / "robustness.csv")
        write_csv(analysis.budgets, draft / "budget_curves.csv.gz")
        write_csv(analysis.ecdf, draft / "runtime_ecdf.csv.gz")
        write_csv(analysis.ert, draft / "ert.csv.gz")
        write_csv(analysis.win_rate.reset_index(), draft / "win_rate.csv")
        write_csv(analysis.informative, draft / "informativeness.csv")
        if len(analysis.group_scores):
            write_csv(analysis.group_scores, draft / "groups.csv")
        document = tables.document(analysis, raw["runs"], skipped, raw["problems"], bool(every))
        write_text(document, draft / "TABLES.md")
        for name, draw in _figures(raw, analysis, bool(every), known, taus):
            try:
                # matplotlib's advice on a figure (an empty legend, a log axis without
                # positive values) is not the user's to act on; an error still skips it
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    draw(draft / name)
            except Exception as error:  # one figure that cannot be drawn costs only itself
                plots.plt.close("all")
                if interrupted.is_set():  # Ctrl-C, turned into an error by a C extension
                    raise KeyboardInterrupt from error
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                print(f"skipped {name}: {type(error).__name__}: {reason}", file=log)
            interrupted.check()
        families = {o: known.family(o) for o in analysis.ranking["optimizer"]}
        page.write(draft, analysis, raw["runs"], families, bool(every))
        interrupted.check()
        made = sorted(p.relative_to(draft) for p in draft.rglob("*") if p.is_file())
        for name in SUPERSEDED:  # a plain copy an earlier render wrote, now out of date
            (folder / name).unlink(missing_ok=True)
        for name in made:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(draft / name, folder / name)
    finally:
        interrupted.restore()
        shutil.rmtree(draft, ignore_errors=True)
    return [folder / name for name in made]


class _Interrupts:
    """Notes every Ctrl-C (SIGINT) while a render runs, and raises KeyboardInterrupt as
    Python's own handler does; the render checks the note after every figure. matplotlib's
    Agg renderer calls back into Python from C++ and turns an exception raised there into
    an error of its own, and a KeyboardInterrupt raised in a garbage collector's callback
    (XLA's) or a finalizer is printed as ignored: either way a figure interrupted there
    looked drawn or undrawable, and the render went on. Installed only
    in the main thread, where signal handlers live, in place of Python's default handler
    (a process that ignores SIGINT keeps ignoring it); elsewhere it notes nothing."""

    def __init__(self):
        self._event = threading.Event()
        self._previous = None
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self._event.set()
        raise KeyboardInterrupt

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """KeyboardInterrupt where a Ctrl-C came and was lost: raised in a garbage
        collector's callback or a finalizer, Python prints it as ignored and goes on."""
        if self._event.is_set():
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
