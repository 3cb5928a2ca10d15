"""Results joined to results already there: `bench run --against DIR` and `bench merge`.

A folder's meta.json holds its fingerprint (`meta.fingerprint`). A run against a folder
sweeps only the optimizers it adds, on the folder's problems under the folder's spec,
and joins its rows to the folder's; where the fingerprints differ, the folder's numbers
would not be what this machine and code give, so the baselines the comparison needs
(the folder's top `TOP` and any named) are swept again and replace theirs. Two folders
merge only when their fingerprints match and no pair is in both.
"""

import dataclasses
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd

from bench import plugins
from bench.analysis import tuning
from bench.analysis.analyze import analyze, complete_facts
from bench.known import facts_frame
from bench.results import meta, schema
from bench.spec import SuiteSpec
from bench.suite import Base, combined, is_full

# Baselines re-run where the fingerprints differ: the folder's best by its own ranking.
TOP = 5
# Timings of meta.json that add up over merged folders.
TIMINGS = ("pairs", "lanes", "compile_seconds", "run_seconds", "total_wall_seconds")


class Incompatible(ValueError):
    """A folder that cannot be read, joined or merged as asked; the message is one line."""


@dataclass(frozen=True)
class Folder:
    """A results folder as read back: meta.json, its spec and its raw tables."""

    path: Path
    record: dict
    spec: SuiteSpec
    tables: dict[str, pd.DataFrame]

    @property
    def fingerprint(self) -> dict:
        return self.record.get("fingerprint", {})

    def pairs(self) -> set[tuple[str, str]]:
        """Every (problem, optimizer) the folder holds, run or skipped."""
        return {
            pair
            for name in ("runs", "skipped")
            if name in self.tables
            for pair in self.tables[name][schema.PAIR].itertuples(index=False, name=None)
        }


def read(folder: str | Path) -> Folder:
    """The results folder `folder`; Incompatible when it is not one."""
    path = Path(folder)
    try:
        record = json.loads((path / "meta.json").read_text())
        fields = record["spec"]
    except OSError:
        raise Incompatible(f"{path} holds no meta.json: not a results folder") from None
    except (ValueError, KeyError, TypeError):
        raise Incompatible(f"{path}/meta.json is damaged: it holds no spec") from None
    known = {f.name for f in dataclasses.fields(SuiteSpec)}
    fields = {k: v for k, v in fields.items() if k in known}
    # meta.json's spec, written from a SuiteSpec (`meta.collect`): each field of its type.
    spec = SuiteSpec(
        **cast(
            dict[str, Any],
            fields
            | {
                "problems": tuple(fields["problems"]),
                "optimizers": tuple(fields["optimizers"]),
                "grid": {k: tuple(v) for k, v in fields.get("grid", {}).items()},
            }
            | (
                {"model_optimizers": tuple(fields["model_optimizers"])}
                if fields.get("model_optimizers") is not None
                else {}
            ),
        )
    )
    try:
        tables = {name: schema.read(path, name) for name in schema.COLUMNS}
    except schema.DamagedTable as error:
        raise Incompatible(str(error)) from None
    if tables["runs"] is None:
        raise Incompatible(f"{path} holds no runs.csv.gz")
    tables = {name: frame for name, frame in tables.items() if frame is not None}
    return Folder(path, record, spec, tables)


def ranking(folder: str | Path) -> pd.DataFrame | None:
    """The overall ranking of a rendered results folder: its ranking.csv; analysed here for
    a folder rendered before ranking.csv was written, or before it held every column of
    `schema.DERIVED`; None where it holds no runs."""
    path = Path(folder)
    written = schema.read(path, "ranking", complete=False)
    if written is not None and set(schema.DERIVED["ranking"]) <= set(written.columns):
        return written
    tables = {name: schema.read(path, name) for name in schema.COLUMNS}
    if tables["runs"] is None:
        return None
    cost = tuning.recorded_cost(tables["runs"], meta.spec_field(path, "cost", "grad_evals"))
    scale = meta.spec_field(path, "scale", "cpu")
    names = sorted(tables["runs"]["problem"].unique())
    facts = complete_facts(tables["problems"], facts_frame(names, scale))
    return analyze(tables, cost, facts).ranking


def _ranking_of(folder: Folder) -> pd.DataFrame:
    """The ranking of a folder `read` accepted (so one that holds runs)."""
    ranked = ranking(folder.path)
    if ranked is None:
        raise Incompatible(f"{folder.path} holds no runs.csv.gz")
    return ranked


def _without(tables: dict[str, pd.DataFrame], optimizers: list[str]) -> dict:
    """`tables` without the rows of `optimizers` (problems.csv, of no optimizer, as it is)."""
    return {
        n: t[~t["optimizer"].isin(optimizers)].reset_index(drop=True) if "optimizer" in t else t
        for n, t in tables.items()
    }


def _describe(differing: dict[str, str]) -> str:
    return "; ".join(f"{field}: {values}" for field, values in differing.items())


def _check_registered(folder: Folder, names, lookup, kind: str) -> None:
    """Incompatible unless every name of `names` that the run needs is found here."""
    for name in names:
        try:
            lookup(name)
        except KeyError:
            raise Incompatible(
                f"{folder.path} holds {kind} {name!r}, which this run needs and is not "
                f"registered here: give it with --{kind}"
            ) from None


def against(
    folder: Folder, spec: SuiteSpec, new: list[str], named: list[str]
) -> tuple[SuiteSpec, Base, str]:
    """What `bench run --against folder` sweeps: (the spec of the sweep, the folder's rows
    it joins, one line saying what is re-run and why).

    spec: the folder's spec with the command line's changes; new: the optimizers added
    by --optimizer; named: those of --optimizers. The sweep runs `new`, the named ones
    the folder lacks and, where the fingerprint differs, the folder's top TOP and the
    named ones it holds; their rows replace the folder's.
    """
    _check_registered(folder, spec.problems, plugins.problem, "problem")
    held = set(folder.spec.optimizers)
    now = meta.fingerprint(replace(spec, optimizers=folder.spec.optimizers))
    now = json.loads(json.dumps(now))
    differing = meta.differences(now, folder.fingerprint, ignore=meta.CODE)
    code = {k: v for k, v in meta.differences(now, folder.fingerprint).items() if k in meta.CODE}
    rerun = []
    if differing:
        rerun = list(
            dict.fromkeys(
                [*_ranking_of(folder)["optimizer"][:TOP], *(n for n in named if n in held)]
            )
        )
    _check_registered(folder, rerun, plugins.optimizer, "optimizer")
    sweep = list(dict.fromkeys([*new, *(n for n in named if n not in held), *rerun]))
    kept = [o for o in folder.spec.optimizers if o not in sweep]
    written = replace(spec, optimizers=tuple([*kept, *sweep]))
    notes = {
        "against": {
            "folder": str(folder.path.resolve()),
            "fingerprint": folder.fingerprint,
            "differences": differing | code,
            "re_run": rerun,
        }
    }
    base = Base(_without(folder.tables, sweep), written, notes)
    if differing:
        line = (
            f"re-running {', '.join(rerun)} of {folder.path}: this run's fingerprint differs "
            f"from the folder's ({_describe(differing)})"
        )
    else:
        line = f"{', '.join(kept)} from {folder.path}, not re-run (fingerprints match)"
        if code:  # another commit of the same release: named, nothing re-run for it
            line += f"; the code differs ({_describe(code)})"
    return replace(spec, optimizers=tuple(sweep)), base, line


def merge(a: Folder, b: Folder) -> tuple[dict[str, pd.DataFrame], dict, SuiteSpec]:
    """The tables, meta.json and spec of `a` and `b` as one folder. Incompatible where
    their fingerprints differ or a pair is in both."""
    for folder in (a, b):
        if not folder.fingerprint:
            raise Incompatible(f"{folder.path}/meta.json holds no fingerprint (an older folder)")
    differing = meta.differences(a.fingerprint, b.fingerprint)
    if differing:
        raise Incompatible(
            f"{a.path} and {b.path} do not compare: their fingerprints differ in "
            f"{_describe(differing)}"
        )
    both = sorted(a.pairs() & b.pairs())
    if both:
        problem, optimizer = both[0]
        more = f" and {len(both) - 1} more" if len(both) > 1 else ""
        raise Incompatible(
            f"{a.path} and {b.path} both hold the pair {problem} x {optimizer}{more}"
        )
    spec = replace(
        a.spec,
        problems=tuple(dict.fromkeys([*a.spec.problems, *b.spec.problems])),
        optimizers=tuple(dict.fromkeys([*a.spec.optimizers, *b.spec.optimizers])),
        steps=a.spec.steps | b.spec.steps,
        grid=a.spec.grid | b.spec.grid,
    )
    tables = combined([a.tables, b.tables])
    record = a.record | {
        "spec": asdict(spec),
        "fingerprint": a.fingerprint
        | {table: a.fingerprint[table] | b.fingerprint[table] for table in meta.TABLES},
        "skipped": tables["skipped"].to_dict("records") if "skipped" in tables else [],
        "full_suite": is_full(asdict(spec)),
        "merged_from": [str(a.path.resolve()), str(b.path.resolve())],
        **{k: a.record.get(k, 0) + b.record.get(k, 0) for k in TIMINGS},
    }
    return tables, record, spec
