"""The CUTEst unconstrained problems, through sif2jax (the optional extra `cutest`).

sif2jax (pinned to 0.0.8 by `pip install -e '.[cutest]'`) rewrites CUTEst's SIF problems
in pure JAX, each with `objective(y, args)`, a start point `y0`, `args` and the SIF
file's `expected_objective_value` (often None). `problem(name)` makes one of its
unconstrained problems a `Problem`:

- Start: CUTEst's y0 moved by a draw of the lane's key, x0 = y0 + RADIUS (1 + |y0|) z with
  z ~ N(0, I): each coordinate by about a tenth of its own size, and by at least a tenth.
  The seeds are starts around the problem's standard one, so that a suite tunes on some
  (its tuning seeds) and reports on others it never tuned on (its evaluation seeds).
- f_star: the reviewed list `problems/data/cutest_f_star.toml` first (certified values
  where the problem comes from NIST's nonlinear regression set, and sif2jax values found
  wrong or rounded up), then the SIF file's value (`known`); where there is none,
  `best_found`: f_star is None and a suite takes the lowest value any optimizer of the
  run reached (Moré and Wild's f_L), and says so in its tables.
- Target: the data-profile test f(y0) - f(x) >= (1 - tau) (f(y0) - f*), that is
  f - f* <= tau (f(y0) - f*), at TAU = 1e-3 where f* is known (a suite sets its own tau
  once f* is resolved); `dim` is y0's size; budget STEPS steps. A suite resolves f*
  from its own run (`f_star_from_run`).
- Precision: the objective runs in the dtype of the parameters it is given. Its data
  (`args`) are the problem's `data()`, cast by the runner like any problem's; its
  constants follow JAX's default float type, so `loss` traces it with x64 switched on
  for float64 parameters and off for float32 ones, whatever the process's setting (a
  float64 run needs x64 on, as `bench run --dtype float64` sets it). A value that still
  comes back in another dtype than the parameters' raises TypeError naming the problem:
  no silent float64 inside a float32 run.

`import sif2jax` imports every problem it has, and some constrained ones build data at
import: 74 s wall (40 s of CPU) on the shared 2-core machine. Only the unconstrained
subpackage is imported here (`_unconstrained`: 3 s wall, 1.5 s of CPU), and only when a
CUTEst problem is built. The list of problems, their sizes, SIF values, f(y0) and what
keeps some from running is the catalogue `problems/data/cutest.csv`, read without
importing sif2jax; `python -m problems.cutest` rewrites it from the installed sif2jax.
"""

import csv
import functools
import importlib.metadata
import importlib.util
import math
import sys
import tomllib
import types
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from problems.base import Problem

VERSION = "0.0.8"  # the sif2jax release the catalogue and the reviewed list were made with
INSTALL = "pip install -e '.[cutest]'"
DATA = Path(__file__).parent / "data"
CATALOGUE = DATA / "cutest.csv"
F_STAR_LIST = DATA / "cutest_f_star.toml"
TAU = 1e-3  # the target's tau where a problem is swept on its own (a suite sets its own)
STEPS = 1000  # default step budget
RADIUS = 0.1  # how far a seed's start lies from y0, relative to 1 + |y0| (module docstring)
TAG = "cutest"


class MissingExtra(ValueError):
    """sif2jax is not installed (or not the pinned release): the CUTEst source is absent."""


def missing() -> str | None:
    """Why the CUTEst problems cannot be built here (one line with the install command),
    or None when sif2jax VERSION is installed. Imports nothing."""
    if importlib.util.find_spec("sif2jax") is None:
        return f"the CUTEst problems need the optional extra: {INSTALL}"
    installed = importlib.metadata.version("sif2jax")
    if installed != VERSION:
        return f"the CUTEst problems need sif2jax {VERSION}, found {installed}: {INSTALL}"
    return None


@functools.cache
def catalogue() -> dict[str, dict]:
    """name -> {dim, sif_f_star (None: none given), f0 (float64 f(y0), None: fails), skip
    (why it cannot run, "" when it can)}, from CATALOGUE, in sif2jax's order."""
    with CATALOGUE.open(newline="") as file:
        rows = list(csv.DictReader(file))

    def number(text):
        return float(text) if text else None

    return {
        row["name"]: {
            "dim": int(row["dim"]) if row["dim"] else 0,
            "sif_f_star": number(row["sif_f_star"]),
            "f0": number(row["f0"]),
            "skip": row["skip"],
        }
        for row in rows
    }


def names() -> tuple[str, ...]:
    """Every unconstrained problem of the catalogue, runnable or not."""
    return tuple(catalogue())


def facts(name: str) -> tuple[int, str]:
    """(parameter count, why the problem cannot run: "" when it can), from the catalogue."""
    row = catalogue()[name]
    return row["dim"], row["skip"]


@functools.cache
def reviewed() -> dict[str, dict]:
    """The reviewed f_star list: name -> {f_star (a number, or "best_found"), source, reason}."""
    return tomllib.loads(F_STAR_LIST.read_text())


def f_star_of(name: str) -> tuple[float | None, str, str]:
    """(f_star, its source "known" or "best_found", a note saying where it comes from)."""
    entry = reviewed().get(name)
    if entry is not None:
        if entry["f_star"] == "best_found":
            return None, "best_found", f"reviewed: {entry['reason']}"
        return float(entry["f_star"]), "known", f"{entry['source']} (reviewed: {entry['reason']})"
    sif = catalogue()[name]["sif_f_star"]
    if sif is None:
        return None, "best_found", "no value in the SIF file"
    return sif, "known", "SIF file, as sif2jax gives it"


@functools.cache
def _unconstrained() -> dict:
    """sif2jax's unconstrained problems by name, imported without the rest of sif2jax.

    `import sif2jax` imports every problem it has, and some constrained ones build their
    data at import (about a minute on two cores); the unconstrained ones need only
    sif2jax's base classes. Its two package modules are stood in for by empty packages
    over the same folders while the unconstrained subpackage imports, then removed, so a
    later `import sif2jax` imports the whole package and reuses these modules.
    """
    reason = missing()
    if reason is not None:
        raise MissingExtra(reason)
    root = Path(importlib.util.find_spec("sif2jax").origin).parent
    stand_ins = {}
    for name, folder in (("sif2jax", root), ("sif2jax.cutest", root / "cutest")):
        if name not in sys.modules:
            stand_ins[name] = types.ModuleType(name)
            stand_ins[name].__path__ = [str(folder)]
    sys.modules.update(stand_ins)
    try:
        module = importlib.import_module("sif2jax.cutest._unconstrained_minimisation")
    finally:
        for name in stand_ins:
            del sys.modules[name]
    return {p.name: p for p in module.unconstrained_minimisation_problems}


def _start(source) -> np.ndarray:
    """y0 as a float64 numpy array (the runner casts it to the run's dtype)."""
    with jax.enable_x64(True):
        return np.asarray(source.y0, np.float64)


def problem(name: str) -> Problem:
    """CUTEst problem `name` as a Problem (module docstring). Raises MissingExtra without
    the extra, ValueError for a name the catalogue lacks or for a problem it marks as not
    runnable (the reason given)."""
    if name not in catalogue():
        raise ValueError(f"problem {name!r} is not a CUTEst unconstrained problem of sif2jax")
    facts = catalogue()[name]
    if facts["skip"]:
        raise ValueError(f"CUTEst problem {name} cannot be run: {facts['skip']}")
    source = _unconstrained()[name]
    y0 = _start(source)
    f_star, provenance, note = f_star_of(name)
    objective = source.objective

    def init(key):
        start = jnp.asarray(y0)
        move = jax.random.normal(key, start.shape, start.dtype)
        return start + RADIUS * (1 + jnp.abs(start)) * move

    def loss(y, args):
        # The objective's constants follow JAX's default float type: x64 follows y's dtype.
        # Under x64 off, its explicit float64 requests are float32, as asked: not a warning.
        with jax.enable_x64(y.dtype == jnp.float64), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Explicitly requested dtype float64", UserWarning)
            value = objective(y, args)
        if value.dtype != y.dtype:
            raise TypeError(
                f"CUTEst problem {name} returns a {value.dtype} loss from {y.dtype} parameters"
            )
        return value

    def data():
        return source.args

    target = math.nan if f_star is None else TAU * (facts["f0"] - f_star)
    return Problem(
        name=name,
        description=f"CUTEst {name} (sif2jax {VERSION}), {y0.size} variables, around y0",
        tags=frozenset({TAG}),
        dim=int(y0.size),
        init=init,
        loss=loss,
        data=data,
        f_star=f_star,
        f_star_source=provenance,
        f_star_note=note,
        target=target,
        steps=STEPS,
        f_star_from_run=True,
    )


def _describe(source) -> dict:
    """A catalogue row of one sif2jax problem: its size, SIF value, float64 f(y0), and why
    it cannot run (its start point, value or gradient at y0 fails or is not finite)."""
    row = {"name": source.name, "dim": "", "sif_f_star": "", "f0": "", "skip": ""}
    with jax.enable_x64(True):
        try:
            y0 = _start(source)
            row["dim"] = y0.size
            expected = source.expected_objective_value
            if expected is not None:
                row["sif_f_star"] = repr(float(expected))
            value, grad = jax.jit(jax.value_and_grad(source.objective))(
                jnp.asarray(y0), source.args
            )
        except Exception as error:  # what the run would meet: reported, never raised
            row["skip"] = f"fails to evaluate at y0: {type(error).__name__}"
            return row
    if not np.isfinite(float(value)):
        row["skip"] = "f(y0) is not finite"
    elif not np.isfinite(np.asarray(grad)).all():
        row["skip"] = "the gradient at y0 is not finite"
    else:
        row["f0"] = repr(float(value))
    return row


def write_catalogue(path: Path = CATALOGUE) -> None:
    """Describes every unconstrained problem of the installed sif2jax into `path`."""
    rows = [_describe(source) for source in _unconstrained().values()]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, ["name", "dim", "sif_f_star", "f0", "skip"])
        writer.writeheader()
        writer.writerows(rows)
    skipped = sum(bool(row["skip"]) for row in rows)
    print(f"wrote {len(rows)} problems to {path} ({skipped} not runnable)")


if __name__ == "__main__":
    write_catalogue()
