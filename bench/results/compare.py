"""Compares two results folders metric by metric: `python -m bench compare BASE NEW`.

Both folders hold the runs table that `python -m bench run` writes (`runs.csv.gz`, or
`runs.csv` in a folder written before compression: `bench.results.schema.path`), and possibly a
`summary.csv`; a table present in both folders is compared, the runs table must be.

- Rows are matched on their key. In `runs.csv.gz` the key is the trial by value
  (`bench.results.schema.trial_key`: problem, optimizer, every swept hyperparameter) and
  the seed (`schema.lane_key`); in `summary.csv` it is (problem, optimizer).
- Which other columns are compared, and how closely, is declared once in
  `bench.results.schema.RUNS` (`schema.tolerance`): the ids (`trial`, `study`), text, timings
  and `seconds_to_target` (wall-clock, never reproduced) are not; counts to the target
  and the `diverged` flag are exact; the rest at the default tolerance. A numeric
  column the schema does not declare (a problem metric such as `test_accuracy`, or a
  column nobody declared yet) is compared at the default. A summary statistic of a
  runs.csv.gz column (`median_steps_to_target`) is held to that column's tolerance.
- A metric has moved when |new - old| > atol + rtol * |old|. NaN equals NaN and
  inf equals an inf of the same sign; any flip of a boolean flag (`diverged`)
  counts as moved. Any moved metric, in either direction, is a regression: the
  point is to notice that the numbers changed.
- Rows present on one side only, a missing table, or different metric columns
  make the input unusable: the comparison stops with a message naming them.

The default tolerance is meant for float64 results made on machines of the same
kind, which reproduce to the last bit on one machine; `--rtol` and `--atol` loosen
any tolerance for float32 results or other hardware.

Exit status: 0 nothing moved, 1 a regression, 2 unusable input.
"""

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import schema
from bench.results.schema import DEFAULT_TOLERANCE, Tolerance

TABLES = ("runs", "summary")
REQUIRED = "runs"
# The tolerance of each declared runs.csv.gz column that is compared (`bench.results.schema.RUNS`);
# an undeclared column is compared at DEFAULT_TOLERANCE.
TOLERANCES = schema.TOLERANCES


class UnusableInput(Exception):
    """Missing files, mismatched schemas or rows: the folders cannot be compared."""


@dataclass(frozen=True)
class Move:
    """One metric of one row that moved beyond its tolerance."""

    table: str
    key: dict  # key column -> value
    metric: str
    old: float
    new: float

    @property
    def relative_change(self) -> float:
        if isinstance(self.old, bool | np.bool_):
            return math.nan
        if self.old == 0 or not (math.isfinite(self.old) and math.isfinite(self.new)):
            return math.inf if self.new != self.old else 0.0
        return (self.new - self.old) / abs(self.old)


def key_columns(table: str, frame: pd.DataFrame) -> list[str]:
    """The columns that identify a row of `table` (see the module docstring)."""
    columns = list(frame.columns)
    keys = schema.KEYS if table == "runs" else schema.PAIR
    missing = [c for c in keys if c not in columns]
    if missing:
        raise UnusableInput(
            f"{table} has no {', '.join(map(repr, missing))} column; columns: {', '.join(columns)}"
        )
    return schema.lane_key(frame) if table == "runs" else schema.PAIR


def metric_columns(table: str, frame: pd.DataFrame, keys: list[str]) -> dict[str, Tolerance]:
    """The numeric and boolean non-key columns compared, each with its tolerance."""
    return {
        c: tolerance
        for c in frame.columns
        if c not in keys
        and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        and (tolerance := schema.tolerance(table, c)) is not None
    }


def moved_mask(old: np.ndarray, new: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """True where `new` differs from `old` beyond the tolerance; NaN == NaN, inf == inf."""
    if old.dtype == bool or new.dtype == bool:
        return old.astype(bool) != new.astype(bool)
    old, new = old.astype(np.float64), new.astype(np.float64)
    both_nan = np.isnan(old) & np.isnan(new)
    with np.errstate(invalid="ignore"):
        close = np.isclose(new, old, rtol=tolerance.rtol, atol=tolerance.atol, equal_nan=False)
    return ~(close | both_nan)


def _key_text(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    return [", ".join(f"{k}={row[k]}" for k in keys) for _, row in rows[keys].iterrows()]


def compare_tables(
    table: str,
    base: pd.DataFrame,
    new: pd.DataFrame,
    overrides: dict[str, Tolerance] | None = None,
) -> list[Move]:
    """Every metric of every row that moved, or UnusableInput for mismatched tables."""
    keys = key_columns(table, base)
    if key_columns(table, new) != keys:
        raise UnusableInput(
            f"{table}: key columns differ: BASE has {keys}, NEW has {key_columns(table, new)}"
        )
    base_metrics, new_metrics = metric_columns(table, base, keys), metric_columns(table, new, keys)
    if set(base_metrics) != set(new_metrics):
        only_base = sorted(set(base_metrics) - set(new_metrics))
        only_new = sorted(set(new_metrics) - set(base_metrics))
        raise UnusableInput(
            f"{table}: metric columns differ: only in BASE {only_base}, only in NEW {only_new}"
        )
    for side, frame in (("BASE", base), ("NEW", new)):
        duplicated = frame[frame.duplicated(keys, keep=False)]
        if len(duplicated):
            first = _key_text(duplicated.head(1), keys)[0]
            raise UnusableInput(f"{table} in {side} has duplicate rows, e.g. {first}")
    merged = base.merge(new, on=keys, how="outer", suffixes=("_old", "_new"), indicator=True)
    only_base = merged[merged["_merge"] == "left_only"]
    only_new = merged[merged["_merge"] == "right_only"]
    if len(only_base) or len(only_new):
        lines = [f"{table}: the folders do not cover the same rows"]
        for label, rows in (("only in BASE", only_base), ("only in NEW", only_new)):
            shown = _key_text(rows.head(10), keys)
            more = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
            lines += [f"  {label}: {text}" for text in shown]
            lines += [f"  {label}: ...{more}"] if more else []
        raise UnusableInput("\n".join(lines))
    moves = []
    overrides = overrides or {}
    for metric, declared in base_metrics.items():
        tolerance = overrides.get(metric, overrides.get("*", declared))
        old, new_values = merged[f"{metric}_old"].to_numpy(), merged[f"{metric}_new"].to_numpy()
        for i in np.flatnonzero(moved_mask(old, new_values, tolerance)):
            key = {k: merged[k].iloc[i] for k in keys}
            moves.append(Move(table, key, metric, old[i].item(), new_values[i].item()))
    return moves


def read_table(folder: Path, table: str) -> pd.DataFrame:
    """Table `table` of `folder` as written; the columns a declared table holds are first
    checked against its schema, as `bench plot` checks them (one line naming the file and
    the row). A column one folder lacks is reported by the comparison itself."""
    path = schema.path(folder, table)
    try:
        if table in schema.COLUMNS:
            schema.read(folder, table, complete=False)
        return pd.read_csv(io.BytesIO(schema.read_bytes(path)))
    except schema.DamagedTable as error:
        raise UnusableInput(str(error)) from None
    except pd.errors.EmptyDataError as error:
        raise UnusableInput(f"{path} is empty") from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UnusableInput(f"{path} is not a readable CSV file: {error}") from error


def compare_folders(
    base: str | Path, new: str | Path, overrides: dict[str, Tolerance] | None = None
) -> list[Move]:
    """Compares the runs table (required) and summary.csv (when both folders have it)."""
    base, new = Path(base), Path(new)
    for folder in (base, new):
        if not folder.is_dir():
            raise UnusableInput(f"{folder} is not a folder")
        if not schema.path(folder, REQUIRED).is_file():
            raise UnusableInput(f"{folder} has no {schema.file_name(REQUIRED)}")
    frames = {}
    for table in TABLES:
        present = [schema.path(folder, table).is_file() for folder in (base, new)]
        if table != REQUIRED and present.count(True) == 1:
            where = base if present[0] else new
            raise UnusableInput(f"{schema.file_name(table)} exists in {where} only")
        if all(present):
            frames[table] = read_table(base, table), read_table(new, table)
    metrics = {
        metric
        for table, (frame, _) in frames.items()
        for metric in metric_columns(table, frame, key_columns(table, frame))
    }
    unknown = sorted(set(overrides or {}) - metrics - {"*"})
    if unknown:
        raise UnusableInput(
            f"--rtol/--atol name no metric of these tables: {', '.join(unknown)}; "
            f"metrics: {', '.join(sorted(metrics))}"
        )
    return [
        move
        for table, (old, new_frame) in frames.items()
        for move in compare_tables(table, old, new_frame, overrides)
    ]


def _number(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    return f"{value:.10g}"


def format_moves(moves: list[Move], limit: int = 50) -> str:
    """A fixed-width table of the moved metrics, at most `limit` lines of them."""
    header = ("table", "problem", "optimizer", "lane", "metric", "old", "new", "rel. change")
    rows = []
    for move in moves[:limit]:
        lane = ", ".join(
            f"{k}={_number(v) if isinstance(v, float) else v}"
            for k, v in move.key.items()
            if k not in ("problem", "optimizer")
        )
        change = move.relative_change
        rows.append(
            (
                move.table,
                str(move.key["problem"]),
                str(move.key["optimizer"]),
                lane or "-",
                move.metric,
                _number(move.old),
                _number(move.new),
                "-" if math.isnan(change) else f"{change:+.3g}",
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    if len(moves) > limit:
        lines.append(f"... and {len(moves) - limit} more moved metrics")
    return "\n".join(line.rstrip() for line in lines)


def parse_tolerances(rtols: list[str], atols: list[str]) -> dict[str, Tolerance]:
    """`--rtol 1e-3` sets every metric, `--rtol final_loss=1e-3` one metric.

    Returns metric -> Tolerance ("*" for every metric), each field falling back to
    the documented default of that metric.
    """
    parsed: dict[str, dict[str, float]] = {}
    for field, values in (("rtol", rtols), ("atol", atols)):
        for text in values:
            metric, _, number = text.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                raise UnusableInput(
                    f"--{field} {text!r}: expected NUMBER or METRIC=NUMBER"
                ) from None
            if not value >= 0:
                raise UnusableInput(f"--{field} must be >= 0, got {text!r}")
            parsed.setdefault(metric or "*", {})[field] = value
    overrides = {}
    for metric, fields in parsed.items():
        everywhere = parsed.get("*", {})
        default = TOLERANCES.get(metric, DEFAULT_TOLERANCE)
        overrides[metric] = Tolerance(
            rtol=fields.get("rtol", everywhere.get("rtol", default.rtol)),
            atol=fields.get("atol", everywhere.get("atol", default.atol)),
        )
    return overrides


def run(base: str, new: str, rtols: list[str], atols: list[str], limit: int = 50) -> int:
    """The `compare` command: prints what moved and returns the exit status."""
    overrides = parse_tolerances(rtols, atols)
    moves = compare_folders(base, new, overrides)
    if not moves:
        print(f"no metric moved between {base} and {new}")
        return 0
    print(format_moves(moves, limit))
    pairs = {(m.key["problem"], m.key["optimizer"]) for m in moves}
    print(
        f"regression: {len(moves)} metric values moved in {len(pairs)} (problem, optimizer) pairs"
    )
    return 1


__all__ = [
    "DEFAULT_TOLERANCE",
    "TOLERANCES",
    "Move",
    "Tolerance",
    "UnusableInput",
    "compare_folders",
    "compare_tables",
    "format_moves",
    "run",
]
