"""The columns of the raw tables a run writes, and a reader that checks a file against them.

`python -m bench plot` redraws everything from these files, which may have been cut
short, edited or replaced since the run; `read` finds that out before anything is
drawn or written, and says what is wrong in one line. Columns not declared here (swept
hyperparameters, problem metrics, timings) may follow.
"""

import io
from pathlib import Path

import numpy as np
import pandas as pd

# Kinds of column: text and never missing; a number that may be missing or infinite
# (the loss of a diverged lane); a finite number; an integer; a True/False flag.
TEXT, NUMBER, VALUE, INTEGER, FLAG = "text", "number", "value", "integer", "flag"
_KEY = {"problem": TEXT, "optimizer": TEXT, "learning_rate": VALUE, "seed": INTEGER}

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
    return frame
