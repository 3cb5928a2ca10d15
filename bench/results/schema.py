"""The columns of the raw tables a run writes, declared once, and a reader that checks a
file against them.

`RUNS` declares every column of runs.csv.gz in the order it is written: its kind (what
`read` checks), its role (a key or id of the lane, a swept hyperparameter, a fact of the
problem, an outcome, a cost to the target, a problem metric, a timing), whether older
folders or other protocols may lack it, and the tolerance `bench compare` holds it to
(None: not compared). Two blocks have no fixed names: the swept hyperparameters besides
`learning_rate` (between the ids and `seed`) and the problem's end-of-run metrics (such
as `test_accuracy`, after `diverged`). A column found nowhere in the declaration is read
as a problem metric: `undeclared` names them, `ordered` refuses one that the problem
does not report, and `bench compare` compares it at the default tolerance.

The lane tables, the bulk of a results folder, are written gzip-compressed
(`runs.csv.gz`, `curves.csv.gz`, `paths.csv.gz`, `layer_grad_norms.csv.gz`: `file_name`);
the others stay plain CSV. `path` finds a table under either name, so folders written
before compression read as before.

`python -m bench plot` redraws everything from these files, which may have been cut
short, edited or replaced since the run; `read` finds that out before anything is
drawn or written, and says what is wrong in one line.

The unit of tuning is the trial: one hyperparameter setting of a (problem, optimizer)
pair, numbered 0, 1, ... (`trial`) in the order its sweep runs the settings. A lane table
(runs, curves, paths, layer_grad_norms) keys its rows by the pair, `trial`, one column
per swept hyperparameter (`learning_rate` first), then `seed` or `step`; every reader
takes the hyperparameter columns from that place (`hyperparameters`) and groups by the
whole trial (`trial_key`), never by the learning rate alone. Folders written before
the trial id have no `trial` column; `with_trials` numbers their settings.
"""

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Kinds of column: text and never missing; a number that may be missing or infinite
# (the loss of a diverged lane); a finite number; an integer; a True/False flag.
TEXT, NUMBER, VALUE, INTEGER, FLAG = "text", "number", "value", "integer", "flag"

# Roles of a runs.csv.gz column. A key names the lane (with the hyperparameters); an id
# numbers the same trial as its hyperparameter values do; a fact is the problem's or the
# run's, the same on every lane of a pair and role; an outcome is what the lane reached;
# a cost is what it took to reach the target on one axis and stay there to the end of the
# budget (the success that ranks, docs/method.md); a first-hit cost is what it took to
# touch the target once, whatever came after (COCO's and AlgoPerf's count, kept beside
# it); a problem metric is one of the problem's own end-of-run numbers; a timing is
# wall-clock, never reproduced.
KEY, ID, HYPERPARAMETER, FACT = "key", "id", "hyperparameter", "fact"
OUTCOME, COST, PROBLEM_METRIC, TIMING = "outcome", "cost", "problem metric", "timing"
FIRST_HIT = "first-hit cost"
LEVEL_COST = "level cost"

# The relative targets every problem is scored at (docs/method.md, "Relative levels"): a
# lane is at level tau when f - f* <= tau (f(x0) - f*), f(x0) the problem's start value.
# Name -> tau; each gives the runs columns `steps_to_tau_NAME` and `grad_evals_to_tau_NAME`
# (written by `bench.sweep.records`), the cost of lasting success at that level (empty
# where the run's dtype cannot resolve it). The suite hands them to `run_sweep`.
LEVELS = {"1e-1": 1e-1, "1e-2": 1e-2, "1e-3": 1e-3, "1e-5": 1e-5, "1e-7": 1e-7}


def level_column(axis: str, level: str) -> str:
    """The runs column of the cost on `axis` ("steps", "grad_evals") to level `level`."""
    return f"{axis}_to_tau_{level}"


@dataclass(frozen=True)
class Tolerance:
    """`bench compare` counts a value as moved when |new - old| > atol + rtol * |old|."""

    rtol: float
    atol: float


# float64 runs are bit-for-bit reproducible on one machine; a different CPU of the
# same kind may reassociate sums differently (a few 1e-16 per operation), which a
# few hundred steps of a contracting optimizer amplify to well under 1e-9 relative.
# 1e-6 relative leaves three orders of magnitude for that, and is still far below
# what a changed update rule, loss or runner does (1e-3 and more on the quick
# benchmark). The absolute floor 1e-12 keeps losses and suboptimalities that
# converged to (nearly) zero from failing on relative noise.
DEFAULT_TOLERANCE = Tolerance(rtol=1e-6, atol=1e-12)
# Counts and flags: reaching the target one step earlier or later, or a flag flip, is a
# change (booleans are compared exactly whatever is set).
EXACT = Tolerance(rtol=0.0, atol=0.0)


@dataclass(frozen=True)
class Column:
    """A declared column: its kind, its role, the tolerance `bench compare` holds it to
    (None: not compared) and whether a table may lack it (older folders, protocols
    without studies, runs without cross-validation)."""

    name: str
    kind: str
    role: str
    tolerance: Tolerance | None
    optional: bool = False


@dataclass(frozen=True)
class Block:
    """Columns of one role whose names vary from run to run, in their declared place."""

    role: str


PAIR = ["problem", "optimizer"]
TRIAL = "trial"
# Under the algoperf protocol, the study of each trial, right after the trial id.
STUDY = "study"

# Every column of runs.csv.gz, in the order it is written.
RUNS = (
    Column("problem", TEXT, KEY, None),
    Column("optimizer", TEXT, KEY, None),
    Column(TRIAL, INTEGER, ID, None, optional=True),
    Column(STUDY, INTEGER, ID, None, optional=True),
    Column("learning_rate", VALUE, HYPERPARAMETER, None),
    # The other hyperparameters the pair's optimizer sweeps (empty where it does not).
    Block(HYPERPARAMETER),
    Column("seed", INTEGER, KEY, None),
    Column("role", TEXT, FACT, None, optional=True),  # "tune" or "eval"
    Column("f_star", VALUE, FACT, DEFAULT_TOLERANCE),
    Column("target", VALUE, FACT, DEFAULT_TOLERANCE),
    Column("steps", INTEGER, FACT, DEFAULT_TOLERANCE),
    # f at the lane's start, its first record (folders written before have none).
    Column("start_loss", NUMBER, OUTCOME, DEFAULT_TOLERANCE, optional=True),
    Column("final_loss", NUMBER, OUTCOME, DEFAULT_TOLERANCE),
    Column("best_loss", NUMBER, OUTCOME, DEFAULT_TOLERANCE),
    Column("final_suboptimality", NUMBER, OUTCOME, DEFAULT_TOLERANCE),
    Column("best_suboptimality", NUMBER, OUTCOME, DEFAULT_TOLERANCE),
    Column("final_grad_norm", NUMBER, OUTCOME, DEFAULT_TOLERANCE),
    Column("final_grad_evals", NUMBER, OUTCOME, DEFAULT_TOLERANCE, optional=True),
    Column("steps_to_target", INTEGER, COST, EXACT),  # -1: never
    Column("grad_evals_to_target", NUMBER, COST, EXACT, optional=True),  # -1: never
    Column("seconds_to_target", NUMBER, COST, None, optional=True),  # NaN: never
    # The same costs to the first touch of the target (folders written before lasting
    # success have only the columns above, which counted the first touch).
    Column("steps_to_first_hit", INTEGER, FIRST_HIT, EXACT, optional=True),  # -1: never
    Column("grad_evals_to_first_hit", NUMBER, FIRST_HIT, EXACT, optional=True),  # -1: never
    Column("seconds_to_first_hit", NUMBER, FIRST_HIT, None, optional=True),  # NaN: never
    # The costs of lasting success at each relative level (-1: never; empty: a level the
    # run's dtype cannot resolve on the problem).
    *(
        Column(level_column(axis, level), NUMBER, LEVEL_COST, EXACT, optional=True)
        for level in LEVELS
        for axis in ("steps", "grad_evals")
    ),
    Column("diverged", FLAG, OUTCOME, EXACT),
    # The problem's end-of-run metrics (`Problem.metrics`, such as test_accuracy).
    Block(PROBLEM_METRIC),
    Column("compile_seconds", NUMBER, TIMING, None, optional=True),
    Column("run_seconds", NUMBER, TIMING, None, optional=True),
    Column("seconds_per_step", NUMBER, TIMING, None, optional=True),
    # With cross-validation: the held-out loss, mean over folds (empty on eval lanes).
    Column("cv_loss", NUMBER, OUTCOME, DEFAULT_TOLERANCE, optional=True),
)
DECLARED = {c.name: c for c in RUNS if isinstance(c, Column)}
# The columns whose values name a lane, besides the swept hyperparameters.
KEYS = [name for name, c in DECLARED.items() if c.role == KEY]
# `bench compare`'s tolerance of each declared runs.csv.gz column it compares.
TOLERANCES = {name: c.tolerance for name, c in DECLARED.items() if c.tolerance is not None}
# summary.csv reports runs.csv.gz columns through these statistics over a trial's lanes
# (`median_final_suboptimality`, `ci_low_steps_to_target`, ...): each is compared as the
# column it reports.
STATISTICS = ("median", "q25", "q75", "ci_low", "ci_high")

# The columns that end the hyperparameters: a lane's seed, a curve's step, in a summary
# the tuning criterion that follows the tuned setting, in grid medians the median cost.
_AFTER_HYPERPARAMETERS = ("seed", "step", "tuned_on", "cost")
_IDS = {name: c.kind for name, c in DECLARED.items() if c.role == ID}
# The lane columns that every lane table has: the pair, the learning rate, the seed.
_LANE = {name: c.kind for name, c in DECLARED.items() if c.role in (KEY, HYPERPARAMETER)}

# Checked in `read`: the required columns of each table ...
COLUMNS = {
    "runs": {name: c.kind for name, c in DECLARED.items() if not c.optional},
    # Summarised over the evaluation seeds: no seed column.
    "curves": {
        **{k: v for k, v in _LANE.items() if k != "seed"},
        "step": INTEGER,
        "grad_evals": NUMBER,
        "loss": NUMBER,
        "loss_q25": NUMBER,
        "loss_q75": NUMBER,
    },
    "skipped": {"problem": TEXT, "optimizer": TEXT, "reason": TEXT},
    # One row per problem: what it is, and f* where the run resolved it (bench.suite).
    "problems": {"problem": TEXT, "dim": INTEGER, "f0": NUMBER, "f_star": NUMBER},
    "paths": {**_LANE, "step": INTEGER, "x": NUMBER, "y": NUMBER},
    "layer_grad_norms": {**_LANE, "step": INTEGER, "layer": INTEGER, "grad_norm": NUMBER},
}
# ... and those checked where present: the trial id is missing from folders written
# before it, the study from protocols without studies; runs.csv.gz's other optional columns
# from older folders or runs without cross-validation.
OPTIONAL = {name: _IDS for name in COLUMNS} | {
    "runs": {name: c.kind for name, c in DECLARED.items() if c.optional},
    # whether a problem is a model family of the suite, in folders written since it is
    # carried (docs/results.md); its description and tags may be empty, so are not checked
    "problems": {"model_family": FLAG},
}
# The tables a render derives that other code reads back: the overall ranking (the
# command line's top five, `--against`'s baselines, the page).
DERIVED = {
    "ranking": {
        "overall_rank": INTEGER,
        "optimizer": TEXT,
        "score": NUMBER,
        "score_low": NUMBER,
        "score_high": NUMBER,
        "rank_low": INTEGER,
        "rank_high": INTEGER,
        "group": INTEGER,
        "solved": INTEGER,
        "instances": INTEGER,
        "problems": INTEGER,
        "coverage": NUMBER,
        "score_run": NUMBER,
        "mean_rank": NUMBER,
    }
}
# problems.csv's columns, in order: the problem's facts (what the views show: its parameter
# count, description, tags separated by spaces, whether it is a model family of the suite,
# its group, what reference models score on its metrics), then, for a problem whose f* the
# run resolved (bench.suite.sweep_problem), f(x0), f* and their provenance, and for one
# the suite left out, why.
PROBLEM_FACTS = (
    "problem", "dim", "description", "tags", "model_family", "group", "baselines",
    "f0", "f_star", "f_star_source", "known_f_star", "lowest", "note", "check", "skipped",
)  # fmt: skip


# The lane tables, written gzip-compressed (a folder a quarter of its plain size).
COMPRESSED = frozenset({"runs", "curves", "paths", "layer_grad_norms"})


def file_name(name: str) -> str:
    """The file table `name` is written to: NAME.csv.gz for the lane tables, else NAME.csv."""
    return f"{name}.csv.gz" if name in COMPRESSED else f"{name}.csv"


def path(folder: Path, name: str) -> Path:
    """Where table `name` of `folder` is: its `file_name`, or NAME.csv where only that
    exists (a folder written before compression)."""
    written = Path(folder) / file_name(name)
    plain = Path(folder) / f"{name}.csv"
    return plain if not written.exists() and plain.exists() else written


def read_bytes(table: Path) -> bytes:
    """The CSV text of `table`, decompressed where its name ends in .gz; DamagedTable for
    a compressed file that is not gzip or was cut short."""
    data = table.read_bytes()
    if table.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DamagedTable(f"{table} is not a readable gzip file: {error}") from None


def hyperparameters(frame: pd.DataFrame) -> list[str]:
    """The swept hyperparameter columns of a lane table or summary, `learning_rate` first:
    those after the trial id and study (after the pair where there is none) up to the
    seed or step."""
    columns = list(frame.columns)
    start = max([len(PAIR)] + [columns.index(c) + 1 for c in (TRIAL, STUDY) if c in columns])
    end = min(columns.index(c) for c in _AFTER_HYPERPARAMETERS if c in columns)
    return columns[start:end]


def other_hyperparameters(frame: pd.DataFrame) -> list[str]:
    """The hyperparameter columns besides `learning_rate` that some row of `frame` sets."""
    return [c for c in hyperparameters(frame) if c != "learning_rate" and frame[c].notna().any()]


def trial_key(frame: pd.DataFrame) -> list[str]:
    """The columns whose values name a trial: the pair and every swept hyperparameter.

    `trial` labels the same settings by number; `bench compare` matches rows on values
    (with the seed), so folders that number their trials differently still compare.
    """
    return [*PAIR, *hyperparameters(frame)]


def lane_key(runs: pd.DataFrame) -> list[str]:
    """The columns whose values name a lane of a runs table: its trial's (`trial_key`)
    and the seed."""
    return [*trial_key(runs), *(k for k in KEYS if k not in PAIR)]


def undeclared(runs: pd.DataFrame) -> list[str]:
    """The columns of a runs table that `RUNS` does not declare, outside the
    hyperparameter block: the problem metrics, and any column still to be declared."""
    swept = set(hyperparameters(runs))
    return [c for c in runs.columns if c not in DECLARED and c not in swept]


def problem_metrics(runs: pd.DataFrame) -> list[str]:
    """End-of-run problem metrics present in `runs` (test accuracy and the like): its
    numeric undeclared columns."""
    return [c for c in undeclared(runs) if pd.api.types.is_numeric_dtype(runs[c])]


def tolerance(table: str, column: str) -> Tolerance | None:
    """The tolerance `bench compare` holds `column` of runs.csv.gz or summary.csv to; None
    where it is not compared.

    A runs.csv.gz column: as declared; an undeclared one (a problem metric, or a column not
    yet declared) at the default. A summary.csv column: that of the runs.csv.gz column a
    statistic of it reports (`median_steps_to_target`: exact, `median_seconds_to_target`:
    none; a median of seconds to a level, `median_seconds_to_tau_1e-3`, none as well),
    the ids none, any other (the tuned setting, success rate, ...) the default.
    """
    if table == "runs":
        return DECLARED[column].tolerance if column in DECLARED else DEFAULT_TOLERANCE
    if column in _IDS:
        return None
    for statistic in STATISTICS:
        reported = column.removeprefix(f"{statistic}_")
        if reported != column and reported in DECLARED:
            return DECLARED[reported].tolerance
        if reported != column and reported.startswith("seconds_"):  # wall-clock, at a level
            return None
    return DEFAULT_TOLERANCE


class UndeclaredColumn(ValueError):
    """A runs table column that `RUNS` does not declare and no problem metric names."""


def ordered(runs: pd.DataFrame, metrics) -> pd.DataFrame:
    """`runs`, a lane table as `records.runs_frame` builds it with ids and facts added
    anywhere, with its columns in the declared order. Its undeclared columns before the
    seed are the swept hyperparameters, those after it the problem's metrics, each block
    in its own order.

    Raises UndeclaredColumn for an undeclared column after the seed that is not one of
    `metrics`, the names of the problem's metrics.
    """
    columns = list(runs.columns)
    seed = columns.index("seed")
    free = {
        HYPERPARAMETER: [c for c in columns[:seed] if c not in DECLARED],
        PROBLEM_METRIC: [c for c in columns[seed:] if c not in DECLARED],
    }
    stray = [c for c in free[PROBLEM_METRIC] if c not in metrics]
    if stray:
        raise UndeclaredColumn(
            f"runs table column(s) {', '.join(stray)}: declared nowhere in "
            "bench.results.schema.RUNS "
            "and not a metric of the problem"
        )
    names = [
        name
        for entry in RUNS
        for name in (free[entry.role] if isinstance(entry, Block) else [entry.name])
    ]
    return runs[[name for name in names if name in runs]]


def with_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `trial` column; for a table without one (older folders), each
    pair's distinct settings numbered 0, 1, ... in the order they first appear."""
    if TRIAL in frame:
        return frame
    setting = frame.groupby(trial_key(frame), sort=False, dropna=False).ngroup()
    trial = setting.groupby([frame[c] for c in PAIR]).rank(method="dense").astype(int) - 1
    frame = frame.copy()
    frame.insert(len(PAIR), TRIAL, trial)
    return frame


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Lane tables of several pairs as one, with every pair's hyperparameter columns in
    the key block (a hyperparameter only some pairs sweep is empty on the others)."""
    swept = list(dict.fromkeys(c for frame in frames for c in hyperparameters(frame)))
    table = pd.concat(frames, ignore_index=True)
    ids = [c for c in (TRIAL, STUDY) if c in table]
    rest = [c for c in table.columns if c not in (*PAIR, *ids, *swept)]
    return table[[*PAIR, *ids, *swept, *rest]]


class DamagedTable(Exception):
    """A raw table that does not match its schema: reported in one line, exit status 2."""


def _bad_row(path: Path, frame: pd.DataFrame, where: np.ndarray, column: str, what: str):
    row = int(np.flatnonzero(where)[0])
    value = frame[column].iloc[row]
    # Line 1 is the header.
    shown = "an empty field" if pd.isna(value) else repr(value)
    return DamagedTable(f"{path}, line {row + 2}: {column} is {shown}, not {what}")


def _check_column(path: Path, frame: pd.DataFrame, column: str, kind: str) -> None:
    values = frame[column]
    if kind == TEXT:
        missing = values.isna().to_numpy()
        if missing.any():
            raise _bad_row(path, frame, missing, column, "a name")
        return
    if kind == FLAG:
        if values.dtype != bool:
            flags = values.isin([True, False]).to_numpy()
            raise _bad_row(path, frame, ~flags, column, "True or False")
        return
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    if kind == NUMBER:
        bad = np.isnan(numbers) & values.notna().to_numpy()
        what = "a number"
    elif kind == VALUE:
        bad, what = ~np.isfinite(numbers), "a finite number"
    else:
        with np.errstate(invalid="ignore"):
            bad, what = ~np.isfinite(numbers) | (numbers != np.round(numbers)), "an integer"
    if bad.any():
        raise _bad_row(path, frame, bad, column, what)


def read(folder: Path, name: str, complete: bool = True) -> pd.DataFrame | None:
    """Table `name` of `folder` (`path`) checked against `COLUMNS[name]`, or None when
    there is no such file.

    Raises DamagedTable for a file that is not text (or not gzip where compressed), is
    empty, ends in the middle of a row, lacks a column (unless not `complete`: then only
    the columns it holds are checked, and the frame is returned as written) or holds a
    row that does not parse as the column's kind.
    """
    table = path(folder, name)
    if not table.exists():
        return None
    data = read_bytes(table)
    if b"\0" in data[:65536]:
        raise DamagedTable(f"{table} is not a CSV file (it holds binary data)")
    if not data.strip():
        raise DamagedTable(f"{table} is empty")
    if not data.endswith(b"\n"):
        raise DamagedTable(f"{table} ends in the middle of a row: the file was cut short")
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[-1]
        raise DamagedTable(f"{table} is not a readable CSV file: {reason}") from None
    declared = COLUMNS[name] if name in COLUMNS else DERIVED[name]
    missing = [c for c in declared if c not in frame.columns]
    if missing and complete:
        raise DamagedTable(f"{table} lacks the column(s) {', '.join(missing)}")
    for column, kind in (declared | OPTIONAL.get(name, {})).items():
        if column in frame:
            _check_column(table, frame, column, kind)
    return with_trials(frame) if name == "runs" and complete else frame
