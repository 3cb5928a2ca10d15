"""Where problems come from: sources, resolved lazily by name or tag.

A source lists its problems' names without building any, and builds one on demand:
`built-in` is the `PROBLEMS` registry (the families of this package); `models` the
model families of `MODELS` (at their cpu scale here; a suite builds them at its own);
`bbob` COCO's 24 noiseless functions in the suite's dimensions (`problems.bbob`);
`cutest` the
unconstrained CUTEst problems through sif2jax, present when the optional extra is
installed (`pip install -e '.[cutest]'`), whose import is paid only by a run that builds
one of them. A name is looked up in the sources in order; a source's name is also a
tag that selects all its problems.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from problems import MODELS, PROBLEMS, bbob, cutest, model
from problems.base import Problem


@dataclass(frozen=True)
class Source:
    """A set of problems: their names and sizes (cheap), a builder, and why it is absent
    here, if it is."""

    name: str
    description: str
    names: Callable[[], Sequence[str]]  # every problem it holds, built or not
    # name -> (parameter count, why the problem cannot run: "" when it can)
    facts: Callable[[str], tuple[int, str]]
    build: Callable[[str], Problem]
    missing: Callable[[], str | None] = lambda: None  # None: available here
    # True where building a problem costs more than describing it from the list (CUTEst's
    # import of sif2jax): its problems' rows in a results folder come from `facts` and
    # the source's description, never from a built problem.
    listed: bool = False


SOURCES = {
    source.name: source
    for source in (
        Source(
            "built-in",
            "the problems of this package",
            lambda: tuple(PROBLEMS),
            lambda name: (PROBLEMS[name].dim, ""),
            PROBLEMS.get,
        ),
        Source(
            "models",
            "the model families (CNNs, a transformer, an autoencoder)",
            lambda: tuple(MODELS),
            lambda name: (model(name).dim, ""),
            model,
        ),
        Source(
            bbob.TAG,
            "COCO's BBOB noiseless functions, instances as lanes",
            bbob.names,
            lambda name: (bbob.parse(name)[1], ""),
            lambda name: bbob.problem(*bbob.parse(name)),
        ),
        Source(
            cutest.TAG,
            f"CUTEst's unconstrained problems through sif2jax {cutest.VERSION}",
            cutest.names,
            cutest.facts,
            cutest.problem,
            cutest.missing,
            listed=True,
        ),
    )
}


def source_of(name: str) -> Source | None:
    """The first source that holds a problem called `name`, else None."""
    return next((s for s in SOURCES.values() if name in s.names()), None)


def problem(name: str) -> Problem:
    """Problem `name`, built once by its source (the same object on every call).

    Raises KeyError for a name no source holds, and `cutest.MissingExtra` (one line, with
    the install command) for one whose source is absent here.
    """
    source = source_of(name)
    if source is None:
        raise KeyError(name)
    reason = source.missing()
    if reason is not None:
        raise cutest.MissingExtra(f"problem {name}: {reason}")
    return _built(source.name, name)


@functools.cache
def _built(source: str, name: str) -> Problem:
    return SOURCES[source].build(name)


def facts(name: str) -> tuple[int, str]:
    """(parameter count, why it cannot run: "" when it can) of problem `name`, from its
    source's list (nothing is built). KeyError for a name no source holds."""
    source = source_of(name)
    if source is None:
        raise KeyError(name)
    return source.facts(name)


def group(name: str) -> str:
    """The group a report breaks its scores down by: "main" for the built-in problems,
    the source's name for the model families and CUTEst's, "bbob: " and the function
    group for BBOB's (`bbob.GROUPS`), "added" for a problem no source holds (a user's)."""
    source = source_of(name)
    if source is None:
        return "added"
    if source.name == bbob.TAG:
        return f"{bbob.TAG}: {bbob.group(bbob.parse(name)[0])}"
    return "main" if source.name == "built-in" else source.name


def select(tag: str) -> list[str]:
    """The problems a tag names: a source's name selects all of its problems, any other
    tag the built-in problems that carry it."""
    if tag in SOURCES:
        return list(SOURCES[tag].names())
    return [name for name, p in PROBLEMS.items() if tag in p.tags]
