"""The BBOB runs of a results folder in COCO's data format, for COCO's post-processing
(`python -m cocopp OUT/adam OUT/sgd`) and the tools that read that format.

`export(folder, out)` writes one COCO data folder per optimizer, `out/NAME`, NAME being
the algorithm's name: per BBOB function an index file `bbobexp_fN.info` (a block of
three lines per dimension: the header `suite = 'bbob', funcId = N, DIM = D, ...`, a
comment line, then the data file and one `instance:evaluations|f - fopt` entry per run)
and per dimension the data files `data_fN/bbobexp_fN_DIMD.dat` and `.tdat` (one block
per run: a header line, then one line per point). Names, layout and number formats are
those of the "bbob" logger of COCO (code-experiments/src/logger_bbob.c), data format
"bbob-new2", whose evaluations, constraint evaluations and best f - fopt are the first
three columns of a line.

The runs are the evaluation lanes of runs.csv.gz (role "eval"): each pair's tuned
setting re-run on instances the tuning never saw, one COCO run per lane, on the COCO
instance its seed plays (held-out seeds 1000-1009: instances 6-15). Problems of other
sources, and BBOB problems without evaluation lanes, are left out and named.

What a run's trace holds. runs.csv.gz does not keep every evaluation of a lane; it
keeps f at the lane's start (`start_loss`), the cost at which the lane reached each
relative level tau (f0 - f*) to stay there (`bench.results.schema.LEVELS`, f0 from
problems.csv), the cost of its first hit of the problem's own target, its cost at the
end of the run and the best f - f* at its record points. Each is a point (evaluations,
f - fopt): the start at cost 0; at a level or a hit, the target the lane was at (the
suite's BBOB loss is COCO's f - fopt); at the end, the best value recorded. The trace
is the running minimum of these points in the order of their evaluations, with a line
at each point that improves it, so that a line's f - fopt is the best value the records
say the run had reached by then: an upper bound on the best it had found, never a value
the records do not hold. Nothing between the points is written: a level reached before
the lane stayed at it shows at the later cost. The first line of every run is at
evaluation 1 (below), which is how COCO's readers (cocopp, iohinspector) find where a
run begins. A value below 0 (float32 rounding at the optimum) is written as 0, as
COCO's logger writes no f - fopt below 0. The `.tdat` file, which COCO writes at set evaluation
counts, holds the same points and ends at the run's last evaluation: cocopp takes each
run's budget from it.

Evaluations are gradient evaluations, the suite's cost model (an evaluation of f and
its gradient counts 1), counted as runs.csv.gz counts them: those spent before the
iterate at a target. The start, and a level it is already at, cost 0 there; COCO counts
the evaluation of the start as the first, so a point at cost 0 is written at evaluation
1 (`FIRST_EVALUATION`). A folder written before runs.csv.gz recorded `start_loss` is
refused: its runs would have no first evaluation. COCO's logger writes more
columns (the measured f, including f_opt, and the point x); the lane tables hold
neither, and cocopp reads only the first three.
"""

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import schema
from bench.sweep import targets
from problems import bbob

# The header fields of COCO's index files: the suite, COCO's final target, the release of
# the bbob logger whose format is written (the `bbob` extra's coco-experiment), its name
# and its data format.
SUITE = "bbob"
PRECISION = 1e-8
COCO_VERSION = "2.8.2"
LOGGER = "bbob"
DATA_FORMAT = "bbob-new2"
# The header line of each run's block in a data file: the columns written.
DATA_HEADER = "% f evaluations | g evaluations | best noise-free fitness - Fopt\n"
COMMENT = (
    "% exported by optbench from {folder}: evaluations are gradient evaluations; lines at "
    "the recorded hits of the levels and the own target, and at the end of each run\n"
)

EVAL = "eval"
# COCO's count of the evaluation of the start: the first.
FIRST_EVALUATION = 1


def bbob_problem(name: str) -> tuple[int, int] | None:
    """(function, dimension) of a BBOB problem's name, such as bbob_f08_5d
    (`problems.bbob.parse`); None for another problem's."""
    try:
        return bbob.parse(name)
    except KeyError:
        return None


@dataclass(frozen=True)
class Run:
    """One lane as a COCO run: its instance, its seed, its trace (evaluations, best
    f - fopt so far) at each improvement, and its last evaluation."""

    instance: int
    seed: int
    trace: list[tuple[int, float]]
    evaluations: int

    @property
    def best(self) -> float:
        """The best f - fopt of the run: its trace's last value."""
        return self.trace[-1][1]


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: each optimizer's COCO data folder, the number of runs in
    each, the BBOB problems exported, and each problem left out with the reason."""

    folders: dict[str, Path]
    runs: dict[str, int]
    problems: list[str]
    left_out: dict[str, str]


def _cost(lane: pd.Series, column: str) -> float | None:
    """The cost in `column` of `lane`; None where the column is missing, empty or -1."""
    if column not in lane.index or pd.isna(lane[column]) or lane[column] < 0:
        return None
    return float(lane[column])


def _count(value: float, what: str) -> int:
    """`value`, a number of evaluations, as an integer; ValueError where it is not one."""
    if not math.isfinite(value) or value != round(value) or value < 0:
        raise ValueError(f"folder: {what} is {value!r}, not a number of evaluations")
    return int(value)


def points(lane: pd.Series, levels: dict[str, float]) -> list[tuple[float, float]]:
    """The points (gradient evaluations, f - f*) runs.csv.gz records for `lane`: its start
    (cost 0, `start_loss` - f*); the cost of lasting success at each level of `levels`
    (name -> target on f - f*) the lane reached, and the cost of the first hit (and of
    lasting success) at the lane's own target, each with its target; the end of the run
    with the best value recorded (NaN where no loss was finite)."""
    found = [(0.0, float(lane["start_loss"]) - float(lane["f_star"]))]
    for name, target in levels.items():
        cost = _cost(lane, schema.level_column("grad_evals", name))
        if cost is not None:
            found.append((cost, target))
    for column in ("grad_evals_to_first_hit", "grad_evals_to_target"):
        cost = _cost(lane, column)
        if cost is not None:
            found.append((cost, float(lane["target"])))
    found.append((float(lane["final_grad_evals"]), float(lane["best_suboptimality"])))
    return found


def trace(found: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The running minimum of `found` (evaluations, f - fopt) in the order of the
    evaluations: one point at each evaluation count where it improves, f - fopt no lower
    than 0. Points without a value (NaN) are passed over."""
    best, kept = math.inf, []
    for evaluations, value in sorted(found):
        value = max(value, 0.0)
        if value < best:  # at equal evaluations the smaller value comes first
            best = value
            kept.append((evaluations, value))
    return kept


def run(lane: pd.Series, levels: dict[str, float]) -> Run:
    """`lane`, a row of runs.csv.gz, as a COCO run (`points`, `trace`, a cost of 0 at
    COCO's first evaluation); ValueError where it records no finite loss or its
    evaluations are not whole numbers."""
    what = f"{lane['problem']} x {lane['optimizer']}, seed {lane['seed']}"
    found = [
        (max(_count(cost, f"{what}: a cost"), FIRST_EVALUATION), value)
        for cost, value in points(lane, levels)
    ]
    steps = trace(found)
    if not steps:
        raise ValueError(f"folder: {what} records no finite loss")
    evaluations = _count(float(lane["final_grad_evals"]), f"{what}: final_grad_evals")
    return Run(bbob.instance_of(int(lane["seed"])), int(lane["seed"]), steps, evaluations)


def _line(evaluations: int, value: float) -> str:
    # COCO's logger: evaluations, constraint evaluations, then "%+10.9e".
    return f"{evaluations} 0 {value:+.9e}\n"


def dat_text(runs: list[Run]) -> str:
    """The .dat file of one (function, dimension): a block per run, a line per point."""
    return "".join(DATA_HEADER + "".join(_line(*point) for point in r.trace) for r in runs)


def tdat_text(runs: list[Run]) -> str:
    """The .tdat file of one (function, dimension): the points of the .dat file, each
    block ending at the run's last evaluation."""
    blocks = []
    for r in runs:
        lines = [_line(*point) for point in r.trace]
        if r.trace[-1][0] != r.evaluations:
            lines.append(_line(r.evaluations, r.best))
        blocks.append(DATA_HEADER + "".join(lines))
    return "".join(blocks)


def info_block(function: int, dim: int, algorithm: str, comment: str, runs: list[Run]) -> str:
    """The three lines of a .info file on one (function, dimension) of `algorithm`."""
    header = (
        f"suite = '{SUITE}', funcId = {function}, DIM = {dim}, Precision = {PRECISION:.3e}, "
        f"algId = '{algorithm}', coco_version = '{COCO_VERSION}', logger = '{LOGGER}', "
        f"data_format = '{DATA_FORMAT}'\n"
    )
    entries = "".join(f", {r.instance}:{r.evaluations}|{r.best:.1e}" for r in runs)
    return f"{header}{comment}{data_path(function, dim)}{entries}\n"


def data_path(function: int, dim: int, suffix: str = ".dat") -> str:
    """A data file's path from its algorithm's folder, as COCO names it."""
    return f"data_f{function}/bbobexp_f{function}_DIM{dim}{suffix}"


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs.csv.gz and problems.csv of `folder`, checked; ValueError naming the folder."""
    try:
        runs = schema.read(folder, "runs")
        problems = schema.read(folder, "problems", complete=False)
    except schema.DamagedTable as error:
        raise ValueError(f"folder: {error}") from None
    if runs is None:
        raise ValueError(f"folder {folder} has no runs.csv.gz: not a results folder")
    if "role" not in runs or "final_grad_evals" not in runs:
        raise ValueError(
            f"folder {folder}: runs.csv.gz records no evaluation lanes or gradient "
            "evaluations (a folder written before them)"
        )
    if "start_loss" not in runs:
        raise ValueError(
            f"folder {folder}: runs.csv.gz records no start_loss, each run's first "
            "evaluation (a folder written before it): run it again (the sweep cache "
            "keeps that quick)"
        )
    if problems is None:
        problems = pd.DataFrame({"problem": pd.Series(dtype=str), "f0": pd.Series(dtype=float)})
    return runs, problems


def _levels(name: str, lanes: pd.DataFrame, problems: pd.DataFrame) -> dict[str, float] | str:
    """The level targets of problem `name` (`level_targets`), or why they are not known:
    an empty dict where its lanes reach no level."""
    reached = [
        level
        for level in schema.LEVELS
        if schema.level_column("grad_evals", level) in lanes
        and (lanes[schema.level_column("grad_evals", level)] >= 0).any()
    ]
    if not reached:
        return {}
    row = problems[problems["problem"] == name]
    f0 = row["f0"].iloc[0] if len(row) and "f0" in row else math.nan
    if pd.isna(f0):
        return "problems.csv records no f0, the start value its levels are taken from"
    f_star = float(lanes["f_star"].iloc[0])
    return targets.level_targets(f_star, float(f0), schema.LEVELS, np.float64)


def _not_run(name: str, problems: pd.DataFrame) -> str | None:
    """Why the run left problem `name` out, where problems.csv says (`skipped`)."""
    if "skipped" not in problems:
        return None
    reason = problems.loc[problems["problem"] == name, "skipped"].dropna()
    return f"not run: {reason.iloc[0]}" if len(reason) else None


def _selected(
    runs: pd.DataFrame, problems: pd.DataFrame
) -> tuple[dict[tuple[int, int], dict[str, float]], dict[str, str]]:
    """The BBOB problems to export ((function, dim) -> level targets) and those left out
    (name -> why), in the order the folder lists them."""
    names = list(dict.fromkeys([*problems["problem"], *runs["problem"]]))
    chosen, left_out = {}, {}
    for name in names:
        key = bbob_problem(name)
        lanes = runs[(runs["problem"] == name) & (runs["role"] == EVAL)]
        if key is None:
            left_out[name] = "not a BBOB problem"
        elif lanes.empty:
            left_out[name] = _not_run(name, problems) or "no evaluation lanes"
        else:
            levels = _levels(name, lanes, problems)
            if isinstance(levels, str):
                left_out[name] = levels
            else:
                chosen[key] = levels
    return chosen, left_out


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"out {out} exists and is not empty")


def export(folder: str | Path, out: str | Path) -> Exported:
    """Writes the BBOB evaluation runs of results folder `folder` in COCO's data format
    (see the module's description), one data folder per optimizer in `out/OPTIMIZER`.

    `out` must not exist, or be an empty folder; it is built beside itself and moved into
    place when complete. Raises ValueError naming the argument: a `folder` that is not a
    results folder (or whose tables are damaged, or that holds no BBOB problem's
    evaluation lanes), an `out` that exists and is not an empty folder.
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ValueError(f"folder {folder} is not a folder")
    _check_out(out)
    runs, problems = _read(folder)
    chosen, left_out = _selected(runs, problems)
    if not chosen:
        shown = [f"{name}: {why}" for name, why in list(left_out.items())[:3]]
        more = "; ..." if len(left_out) > 3 else ""
        raise ValueError(
            f"folder {folder} holds no BBOB problem's evaluation lanes to export "
            f"({'; '.join(shown)}{more})"
        )
    names = {bbob_problem(name): name for name in runs["problem"].unique()}
    evals = runs[runs["role"] == EVAL]
    comment = COMMENT.format(folder=folder)
    # (optimizer, function) -> one .info block per dimension; (optimizer, function, dim)
    # -> its runs, in the order of their instances.
    written: dict[str, dict[tuple[int, int], list[Run]]] = {}
    for (function, dim), levels in chosen.items():
        lanes = evals[evals["problem"] == names[(function, dim)]]
        for optimizer, own in lanes.groupby("optimizer", sort=False):
            converted = [run(lane, levels) for _, lane in own.sort_values("seed").iterrows()]
            written.setdefault(str(optimizer), {})[(function, dim)] = converted

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial.", dir=out.parent))
    try:
        for optimizer, pairs in written.items():
            _write_algorithm(staging / optimizer, optimizer, comment, pairs)
        if out.is_dir():
            out.rmdir()  # empty, as checked
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(
        folders={optimizer: out / optimizer for optimizer in written},
        runs={optimizer: sum(map(len, pairs.values())) for optimizer, pairs in written.items()},
        problems=[names[key] for key in chosen],
        left_out=left_out,
    )


def _write_algorithm(
    home: Path, algorithm: str, comment: str, pairs: dict[tuple[int, int], list[Run]]
) -> None:
    """One algorithm's COCO data folder: an index file per function, data files per
    dimension."""
    home.mkdir()
    for function in sorted({function for function, _ in pairs}):
        dims = sorted(dim for f, dim in pairs if f == function)
        (home / f"data_f{function}").mkdir()
        blocks = []
        for dim in dims:
            runs = pairs[(function, dim)]
            (home / data_path(function, dim)).write_text(dat_text(runs))
            (home / data_path(function, dim, ".tdat")).write_text(tdat_text(runs))
            blocks.append(info_block(function, dim, algorithm, comment, runs))
        (home / f"bbobexp_f{function}.info").write_text("".join(blocks))
