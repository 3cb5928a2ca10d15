"""A joint folder: one ranking and one set of views over several results folders, its
members (the main suite, CUTEst and BBOB: `bench run --suite all`, or any folders:
`bench join`).

A joint folder holds no lane tables of its own, so that it stays small whatever its
members hold: its meta.json names the members (`MEMBERS`, paths relative to the joint
folder) with each one's fingerprint and the digest of its runs table, and `tables` reads
their raw tables as one folder's, for the views (`bench.report.render`) to be drawn
again by `bench plot` at any time. A rule one member's suite never ran is not a rule
that failed there: each of that member's problems lists it in the skipped table, as
one it cannot run, and the views score it apart (coverage).
"""

import hashlib
import os
from pathlib import Path

import pandas as pd

from bench.results import meta, schema

# meta.json's list of the members, as paths relative to the joint folder.
MEMBERS = "members"
# The tables of the members a joint folder's views are drawn from.
JOINED = ("runs", "curves", "skipped", "problems")


class BadMember(ValueError):
    """A member that is not a results folder, or one that cannot join the others."""


def members(folder: Path) -> list[Path] | None:
    """The members of joint folder `folder`, resolved; None for any other folder."""
    record = meta.read(folder) or {}
    listed = record.get(MEMBERS)
    if not isinstance(listed, list):
        return None
    return [(Path(folder) / entry["path"]).resolve() for entry in listed]


def describe(folder: Path, found: list[Path]) -> list[dict]:
    """meta.json's entries for members `found` of joint folder `folder`: each one's path
    relative to `folder`, its fingerprint and the sha256 of its runs table (what the joint
    views were drawn from). BadMember for a folder that is not a results folder."""
    entries = []
    for member in found:
        runs = schema.path(member, "runs")
        if not runs.is_file():
            raise BadMember(f"member {member} holds no runs.csv.gz: not a results folder")
        record = meta.read(member) or {}
        entries.append(
            {
                "path": os.path.relpath(member.resolve(), Path(folder).resolve()),
                "fingerprint": record.get("fingerprint"),
                "runs_sha256": hashlib.sha256(runs.read_bytes()).hexdigest(),
            }
        )
    return entries


def problems_of(found: list[Path]) -> list[tuple[Path, list[str]]]:
    """Each member with the problems its runs table holds (BadMember where it has none)."""
    held = []
    for member in found:
        runs = schema.path(member, "runs")
        if not runs.is_file():
            raise BadMember(f"member {member} holds no runs.csv.gz: not a results folder")
        held.append((member, list(pd.read_csv(runs, usecols=["problem"])["problem"].unique())))
    return held


def check_apart(held) -> None:
    """BadMember where two members of `held` ((member, its problems) pairs) hold one
    problem: a joint folder ranks each problem once."""
    owner: dict[str, Path] = {}
    for member, problems in held:
        for problem in problems:
            if problem in owner:
                raise BadMember(
                    f"problem {problem} is in two members: {owner[problem]} and {member}"
                )
            owner[problem] = member


def tables(found: list[Path]) -> dict[str, pd.DataFrame | None]:
    """The raw tables of members `found` as one folder's (`JOINED`; None where no member
    holds one). Every rule of any member that a member's runs lack is skipped on each of
    that member's problems ("not in the suite of MEMBER"). BadMember where a member holds
    no runs table or two members hold the same problem."""
    read = []
    for member in found:
        held = {name: schema.read(member, name) for name in JOINED}
        runs = held["runs"]
        if runs is None:
            raise BadMember(f"member {member} holds no runs.csv.gz: not a results folder")
        read.append((member, runs, held))
    check_apart([(member, runs["problem"].unique()) for member, runs, _ in read])
    rules = list(dict.fromkeys(o for _, runs, _ in read for o in runs["optimizer"]))
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in JOINED}
    for member, runs, held in read:
        for name, frame in held.items():
            if frame is not None:
                parts[name].append(frame)
        ran = set(runs["optimizer"].unique())
        absent = [rule for rule in rules if rule not in ran]
        reason = f"not in the suite of {member.name}"
        rows = [(p, rule, reason) for p in runs["problem"].unique() for rule in absent]
        parts["skipped"].append(pd.DataFrame(rows, columns=["problem", "optimizer", "reason"]))
    return {
        name: (schema.concat(frames) if name in ("runs", "curves") else pd.concat(frames))
        if frames
        else None
        for name, frames in parts.items()
    }
