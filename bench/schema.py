"""The columns of the raw tables a run writes, and a reader that checks a file against them.

`python -m bench plot` redraws everything from these files, which may have been cut
short, edited or replaced since the run; `read` finds that out before anything is
drawn or written, and says what is wrong in one line. Columns not declared here (swept
hyperparameters, problem metrics, timings) may follow.

The unit of tuning is the trial: one hyperparameter setting of a (problem, optimizer)
pair, numbered 0, 1, ... (`trial`) in the order its sweep runs the settings. A lane table
(runs, curves, paths, layer_grad_norms) keys its rows by the pair, `trial`, one column
per swept hyperparameter (`learning_rate` first), then `seed` or `step`; every reader
takes the hyperparameter columns from that place (`hyperparameters`) and groups by the
whole trial (`trial_key`), never by the learning rate alone. Folders written before
the trial id have no `trial` column; `with_trials` numbers their settings.
"""

import io
from pathlib import Path

import numpy as np
import pandas as pd

# Kinds of column: text and never missing; a number that may be missing or infinite
# (the loss of a diverged lane); a finite number; an integer; a True/False flag.
TEXT, NUMBER, VALUE, INTEGER, FLAG = "text", "number", "value", "integer", "flag"
_KEY = {"problem": TEXT, "optimizer": TEXT, "learning_rate": VALUE, "seed": INTEGER}

PAIR = ["problem", "optimizer"]
TRIAL = "trial"
# Under the algoperf protocol, the study of each trial, right after the trial id.
STUDY = "study"
# The columns that end the hyperparameters: a lane's seed, a curve's step, in a summary
# the tuning criterion that follows the tuned setting, in grid medians the median cost.
_AFTER_HYPERPARAMETERS = ("seed", "step", "tuned_on", "cost")
# Checked where present: the trial id is missing from folders written before it, the
# study from protocols without studies.
OPTIONAL = {TRIAL: INTEGER, STUDY: INTEGER}

COLUMNS = {
    "runs": {
        **_KEY,
        "f_star": VALUE,
        "target": VALUE,
        "steps": INTEGER,
        "final_loss": NUMBER,
        "best_loss": NUMBER,
        "final_suboptimality": NUMBER,
        "best_suboptimality": NUMBER,
        "final_grad_norm": NUMBER,
        "steps_to_target": INTEGER,
        "diverged": FLAG,
    },
    # Summarised over the evaluation seeds: no seed column.
    "curves": {
        **{k: v for k, v in _KEY.items() if k != "seed"},
        "step": INTEGER,
        "grad_evals": NUMBER,
        "loss": NUMBER,
        "loss_q25": NUMBER,
        "loss_q75": NUMBER,
    },
    "skipped": {"problem": TEXT, "optimizer": TEXT, "reason": TEXT},
    "paths": {**_KEY, "step": INTEGER, "x": NUMBER, "y": NUMBER},
    "layer_grad_norms": {**_KEY, "step": INTEGER, "layer": INTEGER, "grad_norm": NUMBER},
}


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


def read(folder: Path, name: str) -> pd.DataFrame | None:
    """`folder/name.csv` checked against `COLUMNS[name]`, or None when there is no such file.

    Raises DamagedTable for a file that is not text, is empty, ends in the middle of a row,
    lacks a column or holds a row that does not parse as the column's kind.
    """
    path = Path(folder) / f"{name}.csv"
    if not path.exists():
        return None
    data = path.read_bytes()
    if b"\0" in data[:65536]:
        raise DamagedTable(f"{path} is not a CSV file (it holds binary data)")
    if not data.strip():
        raise DamagedTable(f"{path} is empty")
    if not data.endswith(b"\n"):
        raise DamagedTable(f"{path} ends in the middle of a row: the file was cut short")
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[-1]
        raise DamagedTable(f"{path} is not a readable CSV file: {reason}") from None
    missing = [c for c in COLUMNS[name] if c not in frame.columns]
    if missing:
        raise DamagedTable(f"{path} lacks the column(s) {', '.join(missing)}")
    for column, kind in COLUMNS[name].items():
        _check_column(path, frame, column, kind)
    for column, kind in OPTIONAL.items():
        if column in frame:
            _check_column(path, frame, column, kind)
    return with_trials(frame) if name == "runs" else frame
