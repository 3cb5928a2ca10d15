"""Results joined to results already there: `bench run --against DIR` and `bench merge`.

A folder's meta.json holds its fingerprint (`meta.fingerprint`). A run against a folder
sweeps only the optimizers it adds, on the folder's problems under the folder's spec,
and joins its rows to the folder's; where the fingerprints differ, the folder's numbers
would not be what this machine and code give, so the baselines the comparison needs
(the folder's top `TOP` and any named) are swept again and replace theirs. Folders
merge only when their fingerprints match and no pair is in two of them; the shards of
one spec (`bench run --shard i/N`) only when together they hold each of its pairs once.
"""

import dataclasses
import datetime
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd

from bench import plugins
from bench.analysis import tuning
from bench.analysis.analyze import analyze, complete_facts
from bench.analysis.profiles import TAUS
from bench.known import facts_frame, known
from bench.report import render
from bench.results import joint, meta, schema
from bench.results.files import locked, write_text
from bench.spec import SuiteSpec
from bench.suite import Base, combined, is_full

# Baselines re-run where the fingerprints differ: the folder's best by its own ranking.
TOP = 5
# Timings of meta.json that add up over merged folders (all but the wall time, for shards).
TIMINGS = ("pairs", "lanes", "compile_seconds", "run_seconds", "total_wall_seconds")
# Pairs an error names before "and N more".
LISTED = 3


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
            },
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
        line = f"{_names_text(kept)} from {folder.path}, not re-run (fingerprints match)"
        if code:  # another commit of the same release: named, nothing re-run for it
            line += f"; the code differs ({_describe(code)})"
    return replace(spec, optimizers=tuple(sweep)), base, line


def merge(
    folders: list[Folder], allow_partial: bool = False
) -> tuple[dict[str, pd.DataFrame], dict, SuiteSpec]:
    """The tables, meta.json and spec of `folders` (two or more, or shards) as one folder.
    Incompatible where their fingerprints differ or a pair is in two of them; shards of
    one spec (meta.json's `shard`) merge by `merge_shards`."""
    if len(folders) < 2 and "shard" not in folders[0].record:
        raise Incompatible("merge needs two folders or more (or a whole set of shards)")
    for folder in folders:
        if not folder.fingerprint:
            raise Incompatible(f"{folder.path}/meta.json holds no fingerprint (an older folder)")
    first = folders[0]
    for other in folders[1:]:
        differing = meta.differences(first.fingerprint, other.fingerprint)
        if differing:
            raise Incompatible(
                f"{first.path} and {other.path} do not compare: their fingerprints differ in "
                f"{_describe(differing)}"
            )
    sharded = [folder for folder in folders if "shard" in folder.record]
    if sharded:
        plain = next((folder for folder in folders if "shard" not in folder.record), None)
        if plain is not None:
            raise Incompatible(
                f"{sharded[0].path} is a shard and {plain.path} is not: merge the shards "
                "first, then merge their folder with it"
            )
        return merge_shards(folders, allow_partial)
    for i, a in enumerate(folders):
        for b in folders[i + 1 :]:
            both = sorted(a.pairs() & b.pairs())
            if both:
                problem, optimizer = both[0]
                more = f" and {len(both) - 1} more" if len(both) > 1 else ""
                raise Incompatible(
                    f"{a.path} and {b.path} both hold the pair {problem} x {optimizer}{more}"
                )
    spec = replace(
        first.spec,
        problems=tuple(dict.fromkeys(p for f in folders for p in f.spec.problems)),
        optimizers=tuple(dict.fromkeys(o for f in folders for o in f.spec.optimizers)),
        steps={k: v for f in folders for k, v in f.spec.steps.items()},
        grid={k: v for f in folders for k, v in f.spec.grid.items()},
    )
    tables = combined([folder.tables for folder in folders])
    fingerprint = first.fingerprint | {
        table: {k: v for f in folders for k, v in f.fingerprint[table].items()}
        for table in meta.TABLES
    }
    record = first.record | {
        "spec": asdict(spec),
        "fingerprint": fingerprint,
        "skipped": tables["skipped"].to_dict("records") if "skipped" in tables else [],
        "full_suite": is_full(asdict(spec)),
        "merged_from": [str(folder.path.resolve()) for folder in folders],
        # folders run one after the other: every timing, the wall time too, adds up
        **{k: sum(folder.record.get(k, 0) for folder in folders) for k in TIMINGS},
        "summed": list(TIMINGS),
    }
    return tables, record, spec


def _names_text(names) -> str:
    """At most LISTED names, then how many more."""
    names = list(names)
    listed = ", ".join(names[:LISTED])
    return listed + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return _names_text(f"{p} x {o}" for p, o in pairs)


def _in_spec_order(tables: dict[str, pd.DataFrame], spec: SuiteSpec) -> dict:
    """Each table of pairs' rows in the order a run of the whole spec writes them (pair
    by pair in the spec's order, each pair's rows as its shard wrote them)."""
    problems = {name: i for i, name in enumerate(spec.problems)}
    optimizers = {name: i for i, name in enumerate(spec.optimizers)}
    ordered = {}
    for name, frame in tables.items():
        if {"problem", "optimizer"} <= set(frame.columns) and name != "problems":
            rank = frame["problem"].map(problems).fillna(len(problems)) * (
                len(optimizers) + 1
            ) + frame["optimizer"].map(optimizers).fillna(len(optimizers))
            frame = frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
        ordered[name] = frame
    return ordered


def merge_shards(
    folders: list[Folder], allow_partial: bool = False
) -> tuple[dict[str, pd.DataFrame], dict, SuiteSpec]:
    """Shards of one spec (`bench run --shard i/N`) as the folder a run of the whole
    spec writes. The set must hold every pair of the spec exactly once; where pairs are
    missing, `allow_partial` merges without them: they become skipped pairs, and
    meta.json names them in `missing_pairs`. Incompatible for shards of different specs,
    counts or assignments, a shard or pair given twice, or missing pairs without
    `allow_partial`. Wall time: each shard's and their maximum (shards run at once)."""
    folders = sorted(folders, key=lambda f: f.record["shard"].get("index", 0))
    first, shard = folders[0], folders[0].record["shard"]
    count = shard.get("count")
    for folder in folders:
        other = folder.record["shard"]
        label = f"{other.get('index')}/{other.get('count')}"
        if other.get("count") != count:
            raise Incompatible(
                f"{first.path} is shard {shard.get('index')}/{count} and {folder.path} is "
                f"shard {label}: shards of different counts"
            )
        differing = {
            k: f"{v} vs {asdict(folder.spec).get(k)}"
            for k, v in asdict(first.spec).items()
            if v != asdict(folder.spec).get(k)
        }
        if differing:
            raise Incompatible(
                f"{first.path} and {folder.path} are shards of different specs "
                f"({_describe(differing)})"
            )
        if other.get("assignment") != shard.get("assignment"):
            raise Incompatible(
                f"{first.path} and {folder.path} were dealt differently (balanced by "
                f"{shard.get('balanced_by')} vs {other.get('balanced_by')}): run every "
                "shard with the same --balance-from"
            )
    indices = [folder.record["shard"].get("index") for folder in folders]
    twice = next((i for i in indices if indices.count(i) > 1), None)
    if twice is not None:
        given = [str(f.path) for f, i in zip(folders, indices, strict=True) if i == twice]
        raise Incompatible(f"shard {twice}/{count} is given twice: {' and '.join(given)}")
    spec = first.spec
    held: dict[tuple[str, str], list[Path]] = {}
    for folder in folders:
        for problem, optimizer in folder.record["shard"].get("pairs", []):
            held.setdefault((problem, optimizer), []).append(folder.path)
    expected = spec.pairs()
    doubled = [pair for pair in expected if len(held.get(pair, [])) > 1]
    if doubled:
        where = " and ".join(map(str, held[doubled[0]]))
        raise Incompatible(f"{where} both hold the pair {_pairs_text(doubled)}")
    foreign = sorted(set(held) - set(expected))
    if foreign:
        raise Incompatible(
            f"{held[foreign[0]][0]} holds pairs not of its spec: {_pairs_text(foreign)}"
        )
    missing = [pair for pair in expected if pair not in held]
    absent = [i for i in range(count) if i not in indices]
    if missing and not allow_partial:
        shards = ", ".join(f"{i}/{count}" for i in absent) or "none"
        raise Incompatible(
            f"the shards lack {len(missing)} pairs of their spec: {_pairs_text(missing)} "
            f"(shards not given: {shards}); --allow-partial merges without them"
        )
    tables = combined([folder.tables for folder in folders])
    if missing:  # named where every reader of the folder sees them: the skipped pairs
        reason = f"missing: its shard of {count} was not merged (--allow-partial)"
        rows = pd.DataFrame(
            [{"problem": p, "optimizer": o, "reason": reason} for p, o in missing],
            columns=["problem", "optimizer", "reason"],
        )
        tables["skipped"] = pd.concat([tables.get("skipped"), rows], ignore_index=True)
    tables = _in_spec_order(tables, spec)
    walls = [folder.record.get("total_wall_seconds", 0) for folder in folders]
    summed = [k for k in TIMINGS if k != "total_wall_seconds"]
    record = {k: v for k, v in first.record.items() if k != "shard"} | {
        "skipped": tables["skipped"].to_dict("records") if "skipped" in tables else [],
        "full_suite": is_full(asdict(spec)) and not missing,
        "merged_from": [str(folder.path.resolve()) for folder in folders],
        **{k: sum(folder.record.get(k, 0) for folder in folders) for k in summed},
        # the shards ran at once: the wall time is the longest shard's
        "total_wall_seconds": max(walls),
        "summed": summed,
        "shards": {
            "count": count,
            "merged": indices,
            "missing": absent,
            "assignment": shard.get("assignment"),
            "balanced_by": shard.get("balanced_by"),
            "wall_seconds": walls,
        },
        "missing_pairs": [list(pair) for pair in missing],
    }
    return tables, record, spec


def join(found: list[Path], out: Path) -> dict:
    """Joint folder `out` over the results folders `found` (`bench.results.joint`): writes
    its meta.json (the members, the spec fields its views read) and draws its views;
    returns the record. Incompatible for fewer than two members, one that is not a
    results folder, members that rank on different cost axes, `out` among them, or an
    `out` holding anything but a joint folder."""
    found = [Path(member).resolve() for member in found]
    out = Path(out).resolve()
    if len(found) < 2:
        raise Incompatible("join needs two results folders or more")
    if out in found:
        raise Incompatible("join needs an --out of its own: it never changes its members")
    if out.exists() and any(out.iterdir()) and joint.members(out) is None:
        raise Incompatible(f"{out} holds something other than a joint folder: give a new --out")
    try:
        joint.check_apart(joint.problems_of(found))
        entries = joint.describe(out, found)
    except joint.BadMember as error:
        raise Incompatible(str(error)) from None
    costs = {str(member): meta.spec_field(member, "cost", None) for member in found}
    if len(set(costs.values())) > 1:
        raise Incompatible(f"the members rank on different cost axes: {costs}")
    record = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        joint.MEMBERS: entries,
        # what the views read of a spec: the members' cost axis and data-profile taus, and
        # no figure per problem (the members draw their own)
        "spec": {
            "cost": next(iter(costs.values())),
            "taus": meta.spec_field(found[0], "taus", list(TAUS)),
            "problem_figures": False,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        write_text(meta.dumps(record), out / "meta.json")
        render.render(out, known=known())
    return record
