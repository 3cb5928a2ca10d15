"""The suite spec: which pairs run, on which learning-rate grid, seeds and step budgets.

Each suite lives as data in a TOML file of `SUITES`: the default, `bench/suite.toml`,
over the built-in problems and every registered optimizer; `bench/models.toml`, the
model families (`problems.MODELS`) with the optimizers it names; `bench/bbob.toml`,
COCO's BBOB functions (`problems.bbob`); and `bench/cutest.toml`, the CUTEst problems of
the optional extra. The command line narrows or replaces it.
"""

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import plugins, protocols
from bench.analysis.profiles import TAUS
from bench.analysis.tuning import COSTS, DEFAULT_COST
from optimizers import OPTIMIZERS
from problems import PROBLEMS, SCALES, Problem, cutest, sources

DEFAULT_SPEC = Path(__file__).with_name("suite.toml")
# Suite name -> its TOML file (`bench run --suite NAME`).
SUITES = {
    "main": DEFAULT_SPEC,
    "models": Path(__file__).with_name("models.toml"),
    "bbob": Path(__file__).with_name("bbob.toml"),
    "cutest": Path(__file__).with_name("cutest.toml"),
}
# Moré and Wild's convergence test f(x0) - f(x) >= (1 - tau) (f(x0) - f_L): the taus of the
# data profiles (profiles.TAUS), and the one targets are set at on problems whose f* a
# suite resolves.
TAU = 1e-3
# The first held-out evaluation seed, unless the tuning seeds reach it.
EVAL_SEED_START = 1000


@dataclass(frozen=True)
class SuiteSpec:
    """Everything `run_suite` needs to know about what to sweep."""

    problems: tuple[str, ...]
    optimizers: tuple[str, ...]
    seeds: int = 5  # tuning seeds 0 .. seeds - 1
    eval_seeds: int = 10  # held-out seeds the tuned setting is re-run on
    dtype: str = "float32"
    curve_points: int = 100
    grid: dict[str, tuple[float, ...]] = field(default_factory=dict)  # optimizer -> lrs
    steps: dict[str, int] = field(default_factory=dict)  # problem -> budget
    max_steps: int | None = None  # cap on every budget
    grid_stride: int = 1  # keep every n-th learning rate of each grid
    folds: int | None = None  # k-fold cross-validation tuning on data-set problems
    # compile with XLA's default options instead of the fast compile (docs/runner.md)
    optimize: bool = False
    cost: str = DEFAULT_COST  # axis of tuning and ranking: steps, grad_evals or seconds
    protocol: str = protocols.DEFAULT  # grid, random:N, algoperf or defaults (bench.protocols)
    # Fixed-start problems (CUTEst's): the target is tau (f(x0) - f_L), f_L resolved by the
    # run (`bench.suite.sweep_problem`); data profiles are drawn at each of `taus`.
    tau: float = TAU
    taus: tuple[float, ...] = TAUS
    problem_figures: bool = True  # the overview and the figures of each problem
    # Problems of the suite's selection that are not run, with the reason.
    excluded: dict[str, str] = field(default_factory=dict)
    scale: str = "cpu"  # size preset of the model families (problems.MODELS)

    def problem(self, name: str) -> Problem:
        """Problem `name`, a model family at the spec's scale."""
        return plugins.problem(name, self.scale)

    def learning_rates(self, optimizer: str) -> tuple[float, ...]:
        grid = self.grid.get(optimizer, plugins.optimizer(optimizer).learning_rates)
        return tuple(grid[:: self.grid_stride])

    def trials(self, optimizer: str) -> list[dict[str, float]]:
        """The settings the protocol sweeps for `optimizer`, in trial order."""
        protocol = protocols.parse(self.protocol)
        return protocol.trials(plugins.optimizer(optimizer), self.learning_rates(optimizer))

    def evaluation_seeds(self) -> list[int]:
        """The held-out seeds: `eval_seeds` of them from EVAL_SEED_START, past the tuning seeds."""
        first = max(EVAL_SEED_START, self.seeds)
        return list(range(first, first + self.eval_seeds))

    def budget(self, problem: str) -> int:
        steps = self.steps.get(problem, self.problem(problem).steps)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def pairs(self) -> list[tuple[str, str]]:
        return [(p, o) for p in self.problems for o in self.optimizers]


def selection(data: dict, path: Path, max_dim: int | None) -> tuple[tuple, dict[str, str]]:
    """(problems to run, problems left out -> why) of a suite file's `source` (default:
    the built-in problems), less its `[exclude]` table (name = reason), the problems its
    source cannot run, and those of more than `max_dim` parameters (default: the file's
    `max_dim`, else none). Raises ValueError for an unknown source, and the source's
    MissingExtra, with the install command, when it is not installed."""
    name = data.get("source", "built-in")
    if name not in sources.SOURCES:
        raise ValueError(f"{path}: source = {name!r}; choose from: {', '.join(sources.SOURCES)}")
    source = sources.SOURCES[name]
    reason = source.missing()
    if reason is not None:
        raise cutest.MissingExtra(f"{path}: {reason}")
    max_dim = data.get("max_dim") if max_dim is None else max_dim
    if max_dim is not None and (
        isinstance(max_dim, bool) or not isinstance(max_dim, int) or max_dim < 1
    ):
        raise ValueError(f"{path}: max_dim must be an integer >= 1, got {max_dim!r}")
    excluded = dict(data.get("exclude", {}))
    chosen = []
    for problem in source.names():
        if problem in excluded:
            continue
        dim, why = source.facts(problem)
        if why:
            excluded[problem] = why
        elif max_dim is not None and dim > max_dim:
            excluded[problem] = f"{dim} parameters, more than max_dim = {max_dim}"
        else:
            chosen.append(problem)
    return tuple(chosen), excluded


def load(path: Path = DEFAULT_SPEC, quick: bool = False, max_dim: int | None = None) -> SuiteSpec:
    """The spec in `path`: its source's problems (`selection`) and its `optimizers`
    (default: every registered one); `quick` applies [quick]."""
    data = tomllib.loads(Path(path).read_text())
    problems, excluded = selection(data, path, max_dim)
    optimizers = tuple(data.get("optimizers", OPTIMIZERS))
    unknown = sorted(set(data.get("grid", {})) - set(OPTIMIZERS))
    unknown += sorted(set(optimizers) - set(OPTIMIZERS))
    unknown += sorted(set(data.get("steps", {})) - set(problems) - set(excluded))
    if unknown:
        raise ValueError(f"{path} names unregistered problems or optimizers: {unknown}")
    scale = data.get("scale", "cpu")
    if scale not in SCALES:
        raise ValueError(f"{path}: scale = {scale!r}; choose from: {', '.join(SCALES)}")
    optimize = data.get("optimize", False)
    if optimize not in (True, False):
        raise ValueError(f"{path}: optimize = {optimize!r}; choose from: true, false")
    cost = data.get("cost", DEFAULT_COST)
    if cost not in COSTS:
        raise ValueError(f"{path}: cost = {cost!r}; choose from: {', '.join(COSTS)}")
    protocol = data.get("protocol", protocols.DEFAULT)
    try:
        protocols.parse(protocol)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    spec = SuiteSpec(
        problems=problems,
        optimizers=optimizers,
        seeds=data.get("seeds", 5),
        eval_seeds=data.get("eval_seeds", 10),
        dtype=data.get("dtype", "float32"),
        curve_points=data.get("curve_points", 100),
        optimize=optimize,
        scale=scale,
        cost=cost,
        protocol=protocol,
        grid={k: tuple(float(x) for x in v) for k, v in data.get("grid", {}).items()},
        steps=dict(data.get("steps", {})),
        tau=float(data.get("tau", TAU)),
        taus=tuple(float(t) for t in data.get("taus", TAUS)),
        problem_figures=data.get("problem_figures", True),
        excluded=excluded,
    )
    if quick:
        fast = data.get("quick", {})
        problems = [p for p in fast.get("problems", spec.problems) if p in spec.problems]
        spec = replace(
            spec,
            problems=tuple(problems) or spec.problems,
            seeds=fast.get("seeds", spec.seeds),
            max_steps=fast.get("max_steps"),
            grid_stride=fast.get("grid_stride", 1),
        )
    return spec


def narrowed(
    spec: SuiteSpec,
    problems: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    grid: Sequence[float] | None = None,
    dtype: str | None = None,
    folds: int | None = None,
    optimize: bool | None = None,
    cost: str | None = None,
    protocol: str | None = None,
    scale: str | None = None,
) -> SuiteSpec:
    """`spec` with the command line's choices applied (None keeps the spec's own)."""
    changes = {}
    if problems:  # named problems run, whatever the suite's selection left out
        changes |= {"problems": tuple(problems), "excluded": {}}
    if optimizers:
        changes["optimizers"] = tuple(optimizers)
    if seeds is not None:
        changes["seeds"] = seeds
    if steps is not None:
        named = changes.get("problems", spec.problems)
        changes |= {"steps": dict.fromkeys([*PROBLEMS, *named], steps), "max_steps": None}
    if grid:
        named = changes.get("optimizers", spec.optimizers)
        changes |= {"grid": dict.fromkeys([*OPTIMIZERS, *named], tuple(grid)), "grid_stride": 1}
    if dtype is not None:
        changes["dtype"] = dtype
    if folds is not None:
        changes["folds"] = folds
    if optimize is not None:
        changes["optimize"] = optimize
    if cost is not None:
        changes["cost"] = cost
    if protocol is not None:
        changes["protocol"] = str(protocols.parse(protocol))
    if scale is not None:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        changes["scale"] = scale
    return replace(spec, **changes)
