"""Tuning protocols: which trials a pair's sweep runs, and how the one reported is chosen.

    grid        the optimizer's learning-rate grid (times the values of any list-valued
                entry of `OptimizerSpec.hparams`), every other hyperparameter at the
                benchmark's setting (`OptimizerSpec.hparams`, else the factory's default)
    random:N    N quasi-random points of the optimizer's whole search space
                (`OptimizerSpec.space()`): a scrambled Halton sequence with a fixed seed,
                the same N points for every problem
    algoperf    AlgoPerf's external tuning: 15 such points, cut into 3 studies of 5 trials
                in order; a study's result is its best trial, the result reported is the
                median over the 3 studies (`bench.analysis.tuning.tuned_trials`)
    defaults    no tuning: one trial at the optimizer's defaults (`OptimizerSpec.defaults()`)

Every trial of a pair is a lane of one compiled program, whatever the protocol; the
chosen trial is then re-run on the held-out evaluation seeds.

A grid extends itself by data (`Protocol.extends`): where the trial tuning picks sits at
an edge of the learning rates it was swept at (`bench.analysis.tuning.grid_edge`),
EXTENSION more points beyond that edge, at the grid's own spacing there, are swept on the
same tuning seeds and the pick is made again over all of them (`extended_trials`;
docs/method.md, "The tuning rule").
"""

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from optimizers import OptimizerSpec

NAMES = ("grid", "random", "algoperf", "defaults")
DEFAULT = "grid"
STUDIES = 3  # AlgoPerf's external tuning: 3 studies of 5 trials
TRIALS_PER_STUDY = 5
# The seed of the scrambling: fixed, so that a rerun draws the same points.
HALTON_SEED = 0
# Learning rates a grid gains beyond the edge its pick sits at.
EXTENSION = 3


@dataclass(frozen=True)
class Protocol:
    """A parsed protocol: its name, and the number of points of a random search."""

    name: str
    points: int | None = None

    def __str__(self) -> str:
        return f"random:{self.points}" if self.name == "random" else self.name

    @property
    def extends(self) -> bool:
        """Whether the grid extends itself where its pick sits at an edge (grid only)."""
        return self.name == "grid"

    @property
    def studies(self) -> int | None:
        """The number of studies the trials are cut into (algoperf), else None."""
        return STUDIES if self.name == "algoperf" else None

    def trials(self, optimizer: OptimizerSpec, grid: tuple[float, ...]) -> list[dict[str, float]]:
        """The settings a pair's sweep runs, in trial order: `grid` is the optimizer's
        learning-rate grid (the `grid` protocol's trials)."""
        if self.name == "grid":
            return grid_trials(grid, optimizer.hparams)
        if self.name == "defaults":
            return [optimizer.defaults()]
        count = STUDIES * TRIALS_PER_STUDY if self.name == "algoperf" else self.points
        if count is None:
            raise ValueError(f"protocol {self.name} needs a number of points (random:N)")
        space = optimizer.space()
        units = halton(count, len(space), HALTON_SEED)
        return [
            {name: dim.value(u) for (name, dim), u in zip(space.items(), row, strict=True)}
            for row in units
        ]

    def study_of(self, trials: np.ndarray) -> np.ndarray | None:
        """The study of each trial id (algoperf: trials 0-4 form study 0, ...), else None."""
        return None if self.studies is None else np.asarray(trials) // TRIALS_PER_STUDY


def parse(text: str) -> Protocol:
    """'grid', 'random:N' (N >= 1), 'algoperf' or 'defaults' as a Protocol.

    Raises ValueError, in one line, for anything else.
    """
    name, _, count = str(text).partition(":")
    if name == "random":
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"protocol random:N needs a number of points N >= 1, got {text!r}")
        return Protocol("random", int(count))
    if name in NAMES and not count:
        return Protocol(name)
    raise ValueError(f"unknown protocol {text!r}; choose from: grid, random:N, algoperf, defaults")


def _primes(count: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes):
            primes.append(candidate)
        candidate += 1
    return primes


def halton(points: int, dims: int, seed: int) -> np.ndarray:
    """`points` x `dims` points of the unit cube: a Halton sequence (one prime base per
    dimension, from index 1) with each dimension's digits scrambled by a random
    permutation of 0 .. base - 1 drawn from `seed` (Braaten and Weller 1979), which
    breaks the correlation between dimensions of large bases.

    Every point uses the same number of digits, enough to tell `points` points apart.
    """
    rng = np.random.default_rng(seed)
    index = np.arange(1, points + 1)
    out = np.zeros((points, dims))
    for dim, base in enumerate(_primes(dims)):
        permutation = rng.permutation(base)
        digits = int(np.ceil(np.log(points + 1) / np.log(base))) + 1
        rest, scale = index.copy(), 1.0
        for _ in range(digits):
            scale /= base
            out[:, dim] += scale * permutation[rest % base]
            rest //= base
    return out


def grid_trials(learning_rates: Sequence[float], options: Mapping) -> list[dict[str, float]]:
    """The points of the grid of `learning_rates` x every list-valued option, in order."""
    if len(learning_rates) == 0:
        raise ValueError("learning_rates is empty: give at least one learning rate")
    grid = {"learning_rate": list(learning_rates)}
    grid |= {k: list(v) for k, v in options.items() if isinstance(v, list | tuple | np.ndarray)}
    for argument, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"{argument} is empty: give at least one value to sweep")
    return [dict(zip(grid, point, strict=True)) for point in itertools.product(*grid.values())]


def extended_trials(
    trials: Sequence[Mapping[str, float]], tuned: int, edge: str, points: int = EXTENSION
) -> list[dict[str, float]]:
    """`points` trials beyond the `edge` ("low" or "high"; "": none) of the learning rates
    that trial `tuned` sits at (`bench.analysis.tuning.grid_edge`): the trials that share
    its other hyperparameters form its learning-rate line, and each new rate is the
    previous times the ratio of the edge to its neighbour on that line.
    """
    if edge not in ("low", "high"):
        return []
    pick = trials[tuned]
    others = {k: v for k, v in pick.items() if k != "learning_rate"}
    line = sorted(
        {float(t["learning_rate"]) for t in trials if all(t.get(k) == v for k, v in others.items())}
    )
    ratio = line[-1] / line[-2] if edge == "high" else line[0] / line[1]
    rate = float(pick["learning_rate"])
    return [{**pick, "learning_rate": rate * ratio**k} for k in range(1, points + 1)]


def listed_trials(trials, learning_rates, hyperparameters: Mapping) -> list[dict[str, float]]:
    """`trials` checked: a non-empty list of settings naming the same hyperparameters,
    learning_rate among them, given instead of a grid (no learning_rates, no lists)."""
    listed = [k for k, v in hyperparameters.items() if isinstance(v, list | tuple | np.ndarray)]
    if learning_rates is not None or listed:
        raise ValueError(
            "trials replaces the grid: give trials, or learning_rates and swept lists, not both"
        )
    trials = [dict(t) for t in trials]
    if not trials:
        raise ValueError("trials is empty: give at least one setting")
    names = set(trials[0])
    if "learning_rate" not in names or any(set(t) != names for t in trials):
        raise ValueError(
            "trials must all name the same hyperparameters, learning_rate among them; "
            f"the first names {sorted(names)}"
        )
    # In the first trial's order, learning_rate first, as in a grid's columns.
    order = ["learning_rate", *(k for k in trials[0] if k != "learning_rate")]
    return [{k: t[k] for k in order} for t in trials]
