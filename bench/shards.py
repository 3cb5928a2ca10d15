"""Shards of a suite: `bench run --shard i/N` runs a share of a spec's units of work.

A unit is what `bench.suite` submits as one: a pair, or every pair of a problem that
`sweep_problem` runs together (never split). The units are dealt to N shards by the
compile and run seconds an earlier run recorded for their pairs (a runs table, the
`--balance-from` folder's): those the table does not know are dealt round-robin in the
spec's order first, then the known ones longest first, each to the shard that holds
the fewest seconds so far (greedy LPT; ties to the shard of fewer units, then the lower
index). Given the same table, every machine deals the same shards. The skipped pairs
(which cost nothing) are shard 0's.
"""

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.results import schema

Pair = tuple[str, str]
# The folder of a results folder that holds the shards of an executor's run, one folder
# each (`bench.executors`); a run or merge into the results folder keeps it.
SHARDS = ".shards"


class ShardError(ValueError):
    """A --shard that is not i/N with 0 <= i < N, or more shards than units of work."""


def parse(text: str) -> tuple[int, int]:
    """(i, N) of "i/N"; ShardError unless 0 <= i < N."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if found is None:
        raise ShardError(f"--shard {text}: give it as i/N, e.g. 0/4")
    index, count = int(found[1]), int(found[2])
    if count < 1:
        raise ShardError(f"--shard {text}: N must be >= 1")
    if index >= count:
        raise ShardError(f"--shard {text}: i must be between 0 and {count - 1}")
    return index, count


def checkout_results() -> Path | None:
    """The committed `results/` folder of the checkout this code runs from, if any: the
    runs table every clone of one commit holds alike."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "results").is_dir():
        return checkout / "results"
    return None


def recorded_seconds(folder: Path | None) -> dict[Pair, float] | None:
    """Compile plus run seconds per (problem, optimizer) as `folder`'s runs.csv.gz records
    them; None where there is no readable table."""
    if folder is None:
        return None
    columns = ["problem", "optimizer", "compile_seconds", "run_seconds"]
    try:
        recorded = pd.read_csv(schema.path(Path(folder), "runs"), usecols=columns)
    except Exception:  # no earlier run, or a table that cannot say
        return None
    seconds = recorded.groupby(["problem", "optimizer"])[columns[2:]].first().sum(axis=1)
    pairs = seconds.index.to_flat_index()
    return {(str(p), str(o)): float(s) for (p, o), s in zip(pairs, seconds, strict=True)}


def unit_costs(units: Sequence[Sequence[Pair]], seconds: dict[Pair, float]) -> list[float | None]:
    """Each unit's recorded seconds (the sum over its pairs), None where a pair of it is
    not recorded."""
    costs = []
    for pairs in units:
        known = [seconds.get(pair) for pair in pairs]
        ok = all(s is not None and math.isfinite(s) for s in known)
        costs.append(float(sum(s for s in known if s is not None)) if ok else None)
    return costs


def assign(costs: Sequence[float | None], count: int) -> list[int]:
    """The shard of each unit: the unknown ones (None) round-robin in order, then the
    known ones longest first (ties in order) to the shard of the fewest seconds (then of
    the fewest units, then the lowest index)."""
    shard_of = [0] * len(costs)
    seconds, units = [0.0] * count, [0] * count
    unknown = [i for i, cost in enumerate(costs) if cost is None]
    for k, i in enumerate(unknown):
        shard_of[i] = k % count
        units[k % count] += 1
    known = {i: cost for i, cost in enumerate(costs) if cost is not None}
    for i in sorted(known, key=lambda i: -known[i]):  # a stable sort: ties in order
        lightest = min(range(count), key=lambda s: (seconds[s], units[s], s))
        shard_of[i] = lightest
        seconds[lightest] += known[i]
        units[lightest] += 1
    return shard_of


def digest(units: Sequence[Sequence[Pair]], shard_of: Sequence[int]) -> str:
    """A short hash of the whole assignment: equal on every shard dealt alike."""
    dealt = [
        [list(pair) for pair in pairs] + [shard]
        for pairs, shard in zip(units, shard_of, strict=True)
    ]
    text = json.dumps(dealt, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, dealt by `seconds` (pair -> recorded seconds) read from
    `balanced_by` (None: no table, every unit dealt round-robin)."""

    index: int
    count: int
    seconds: dict[Pair, float] = field(default_factory=dict)
    balanced_by: str | None = None

    @classmethod
    def of(cls, index: int, count: int, balance_from: Path | None) -> "Shard":
        seconds = recorded_seconds(balance_from)
        source = None if seconds is None else str(Path(balance_from or "").resolve())
        return cls(index, count, seconds or {}, source)

    def deal(
        self, units: Sequence[Sequence[Pair]], skipped: Sequence[Pair] = ()
    ) -> tuple[list[int], dict]:
        """The indices of `units` (each the list of pairs it covers) that are this
        shard's, and what meta.json records of the shard: the pairs it holds, those of
        its units and, for shard 0, the `skipped` ones. ShardError where there are fewer
        units than shards (a shard would hold nothing)."""
        if len(units) < self.count:
            raise ShardError(
                f"--shard {self.index}/{self.count}: the spec has {len(units)} units of work "
                f"(pairs, or problems run together); choose N <= {len(units)}"
            )
        shard_of = assign(unit_costs(units, self.seconds), self.count)
        mine = [i for i, shard in enumerate(shard_of) if shard == self.index]
        costs = unit_costs([units[i] for i in mine], self.seconds)
        record = {
            "index": self.index,
            "count": self.count,
            "assignment": digest(units, shard_of),
            "balanced_by": self.balanced_by,
            "recorded_seconds": round(sum(c for c in costs if c is not None), 3),
            "pairs": [
                *(list(pair) for i in mine for pair in units[i]),
                *(list(pair) for pair in (skipped if self.index == 0 else ())),
            ],
        }
        return mine, record


__all__ = [
    "SHARDS",
    "Shard",
    "ShardError",
    "assign",
    "checkout_results",
    "parse",
    "recorded_seconds",
    "unit_costs",
]
