"""Where the benchmark finds an optimizer or a problem by name: the one resolver.

Besides the built-in registries (`optimizers.OPTIMIZERS`, `problems.PROBLEMS`) and the
optional problem sources (`problems.sources`: CUTEst, when its extra is installed), names
come from installed packages' entry points (groups `optbench.optimizers` and
`optbench.problems`) and from the command line (`--optimizer [NAME=]PATH.py:FACTORY`
or `module:FACTORY`, `--problem [NAME=]PATH.py:FACTORY`), which `add_optimizer` and
`add_problem` register for the rest of the process. Every lookup of a name (the suite
spec, the runner, `bench list`) goes through `optimizer`, `problem` and `origins`.

An added optimizer's search space and capabilities come from the declaration the
built-in rules use: an `OptimizerSpec` for the factory in its module (the attribute
itself, a module-level one, or an entry of the module's `REGISTRY`), else a TOML file
(`space_file`, see `space_from_toml`), else the standard learning-rate grid `LR_GRID`.
Anything wrong with what is given raises PluginError, whose message is one line.
"""

import functools
import importlib
import importlib.util
import inspect
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import cast

import numpy as np

from optimizers import OPTIMIZERS, Optimizer, OptimizerSpec
from optimizers.registry import LR_GRID, Choice, Range, exact
from problems import MODELS, PROBLEMS, Problem, model, sources

OPTIMIZER_GROUP = "optbench.optimizers"
PROBLEM_GROUP = "optbench.problems"
BUILT_IN = "built-in"
ENTRY_POINT = "entry point "
# The capabilities a --space file may declare, with the type each must have.
CAPABILITIES = {
    "needs_loss": bool,
    "deterministic_only": bool,
    "max_dim": int,
    "default_learning_rate": float,  # for --protocol defaults, where the factory has none
}
# The points of a grid drawn from a [learning_rate] range: the standard grid's count.
GRID_POINTS = len(LR_GRID)

# Registered for this process: name -> (entry, origin).
_optimizers: dict[str, tuple[OptimizerSpec, str]] = {}
_problems: dict[str, tuple[Problem, str]] = {}


class PluginError(ValueError):
    """An optimizer or problem that cannot be loaded as given; the message is one line."""


def factory_name(factory) -> str:
    """The name a factory is ranked under: a function's or class's own name, the wrapped
    function's for a `functools.partial`, else its type's."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return getattr(factory, "__name__", type(factory).__name__)


def added_names() -> set[str]:
    """The optimizer and problem names `add_optimizer` and `add_problem` registered in
    this process (not those of entry points, which every process finds)."""
    return {
        name
        for registered in (_optimizers, _problems)
        for name, (_, origin) in registered.items()
        if not origin.startswith(ENTRY_POINT)
    }


def _origins(registered: dict, group: str, built_in: dict) -> dict[str, str]:
    found = dict.fromkeys(built_in, BUILT_IN)
    for point in metadata.entry_points(group=group):
        package = point.dist.name if point.dist is not None else point.value
        found.setdefault(point.name, f"{ENTRY_POINT}{point.name} ({package})")
    return found | {name: origin for name, (_, origin) in registered.items()}


def origins() -> tuple[dict[str, str], dict[str, str]]:
    """(optimizer name -> origin, problem name -> origin) of every name there is."""
    return (
        _origins(_optimizers, OPTIMIZER_GROUP, OPTIMIZERS),
        _origins(_problems, PROBLEM_GROUP, PROBLEMS | MODELS),
    )


def _entry_point(group: str, name: str):
    for point in metadata.entry_points(group=group):
        if point.name == name:
            try:
                return point.load()
            except Exception as error:
                raise PluginError(
                    f"entry point {name} ({point.value}) does not load: "
                    f"{type(error).__name__}: {_line(error)}"
                ) from None
    return None


def optimizer(name: str) -> OptimizerSpec:
    """The entry of optimizer `name`: built-in, registered, or an entry point's.
    Raises KeyError for a name found nowhere."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if name not in _optimizers:
        loaded = _entry_point(OPTIMIZER_GROUP, name)
        if loaded is None:
            choices = ", ".join(origins()[0])
            raise KeyError(f"unknown optimizer {name!r}; choose from: {choices}")
        _optimizers[name] = (_as_spec(loaded, name, None), origins()[0][name])
    return _optimizers[name][0]


def problem(name: str, scale: str = "cpu") -> Problem:
    """Problem `name`: built-in (a model family at `scale`: tiny, cpu or gpu), registered,
    of an optional source (a CUTEst problem), or an entry point's. KeyError if none;
    `problems.cutest.MissingExtra` (a ValueError, one line with the install command) for a
    CUTEst name without the extra."""
    if name in PROBLEMS:
        return PROBLEMS[name]
    if name in MODELS:
        return model(name, scale)
    if name not in _problems and sources.source_of(name) is not None:
        return sources.problem(name)
    if name not in _problems:
        loaded = _entry_point(PROBLEM_GROUP, name)
        if loaded is None:
            raise KeyError(f"unknown problem {name!r}; choose from: {', '.join(origins()[1])}")
        _problems[name] = (_as_problem(loaded, name), origins()[1][name])
    return _problems[name][0]


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _split(text: str) -> tuple[str | None, str, str]:
    """'[NAME=]SOURCE:ATTRIBUTE' -> (NAME or None, SOURCE, ATTRIBUTE)."""
    head, equals, tail = text.partition("=")
    name, target = (head, tail) if equals and ":" not in head else (None, text)
    source, colon, attribute = target.rpartition(":")
    if not colon or not source or not attribute:
        raise PluginError(f"{text!r}: expected [NAME=]PATH.py:FACTORY or [NAME=]module:FACTORY")
    return name or None, source, attribute


def _module(source: str):
    """The module `source` names: a .py file (loaded under a name of its own) or a module."""
    if source.endswith(".py"):
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"{source}: no such file")
        module_name = f"optbench_user_{abs(hash(str(path))):x}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:  # a .py file always has a source loader
            raise PluginError(f"{source}: cannot be loaded as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise PluginError(
                f"{source} fails to import: {type(error).__name__}: {_line(error)}"
            ) from None
        return module
    try:
        return importlib.import_module(source)
    except Exception as error:
        raise PluginError(
            f"{source}: cannot import: {type(error).__name__}: {_line(error)}"
        ) from None


def _attribute(module, source: str, attribute: str):
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise PluginError(f"{source} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def _declaration(module, factory) -> OptimizerSpec | None:
    """The OptimizerSpec that `module` declares for `factory` (module-level or in its
    REGISTRY), else None."""
    registry = getattr(module, "REGISTRY", None)
    candidates = list(registry.values()) if isinstance(registry, dict) else []
    candidates += [v for v in vars(module).values() if isinstance(v, OptimizerSpec)]
    return next((c for c in candidates if c.factory is factory), None)


def _range(name: str, table: dict) -> Range | Choice:
    try:
        if "values" in table:
            return Choice(tuple(float(v) for v in table["values"]))
        return Range(float(table["low"]), float(table["high"]), table.get("scale", "log"))
    except (KeyError, TypeError, ValueError) as error:
        raise PluginError(
            f"[{name}]: {_line(error)} (give low, high and scale, or values)"
        ) from None


def space_from_toml(path: str | Path) -> dict:
    """The OptimizerSpec fields a --space TOML file declares.

    Tables name ranges: `[learning_rate]` and any hyperparameter, each `low`, `high`,
    `scale` (log, linear or one_minus_log) or `values = [...]`; top-level keys the
    capabilities `needs_loss`, `deterministic_only`, `max_dim`, `default_learning_rate`
    (the learning rate of `--protocol defaults`, where the factory has no default), and
    `learning_rates` (the grid; default: 9 points over the [learning_rate] range, else
    LR_GRID).
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise PluginError(f"{path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PluginError(f"{path}: not TOML: {_line(error)}") from None
    fields, space = {}, {}
    for key, value in data.items():
        if isinstance(value, dict):
            space[key] = _range(key, value)
        elif key in CAPABILITIES:
            kind = CAPABILITIES[key]
            number = kind is float and isinstance(value, int) and not isinstance(value, bool)
            if not (isinstance(value, kind) or number):
                raise PluginError(f"{path}: {key} must be a {kind.__name__}")
            fields[key] = float(value) if number else value
        elif key == "learning_rates":
            grid = tuple(float(x) for x in value)
            if not grid or not all(0 < x < float("inf") for x in grid):
                raise PluginError(f"{path}: learning_rates must be positive and finite")
            fields[key] = grid
        else:
            choices = ", ".join([*CAPABILITIES, "learning_rates"])
            raise PluginError(f"{path}: unknown key {key!r}; choose from: {choices}, or [tables]")
    if "learning_rates" not in fields:
        if "learning_rate" in space:
            points = np.linspace(0.0, 1.0, GRID_POINTS)
            fields["learning_rates"] = tuple(exact(space["learning_rate"].value(u)) for u in points)
        else:
            fields["learning_rates"] = LR_GRID
    return fields | {"search_space": space}


def _as_spec(value, name: str, space_file: str | Path | None, module=None) -> OptimizerSpec:
    """An OptimizerSpec for `value` (an OptimizerSpec or any optimizer factory), checked
    by building it at its first learning rate."""
    if isinstance(value, OptimizerSpec):
        spec = value
    elif not callable(value):
        raise PluginError(f"{name}: {type(value).__name__} is not callable (not a factory)")
    elif module is not None and (declared := _declaration(module, value)) is not None:
        spec = declared
    # A callable `value` is taken for a factory: what it builds is checked below.
    elif space_file is not None:
        spec = OptimizerSpec(cast(Callable[..., Optimizer], value), **space_from_toml(space_file))
        _check_arguments(name, spec, space_file)
    else:
        spec = OptimizerSpec(cast(Callable[..., Optimizer], value), learning_rates=LR_GRID)
    try:
        built = spec.factory(learning_rate=spec.learning_rates[0], **spec.hparams)
    except Exception as error:
        raise PluginError(
            f"{name}: factory(learning_rate=...) fails: {type(error).__name__}: {_line(error)}"
        ) from None
    if not (callable(getattr(built, "init", None)) and callable(getattr(built, "update", None))):
        raise PluginError(
            f"{name}: the factory returns {type(built).__name__}, not an optimizer "
            "(an object with init and update)"
        )
    return spec


def _check_arguments(name: str, spec: OptimizerSpec, space_file: str | Path) -> None:
    """Raises PluginError where the --space file sweeps a hyperparameter the factory does
    not take (a factory with **kwargs takes any)."""
    try:
        parameters = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):  # no signature to read: the first build checks it
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(spec.search_space) - set(parameters))
    if unknown:
        raise PluginError(
            f"{space_file}: {', '.join(unknown)} is not an argument of {name}'s factory; "
            f"it takes: {', '.join(parameters)}"
        )


def _as_problem(value, name: str) -> Problem:
    if isinstance(value, Problem):
        return value
    if not callable(value):
        raise PluginError(f"{name}: {type(value).__name__} is neither a Problem nor a factory")
    try:
        made = value()
    except Exception as error:
        raise PluginError(
            f"{name}: factory() fails: {type(error).__name__}: {_line(error)}"
        ) from None
    if not isinstance(made, Problem):
        raise PluginError(f"{name}: the factory returns {type(made).__name__}, not a Problem")
    return made


def _check_new(name: str, kind: str, registered: dict, built_in: dict, origin: str) -> None:
    if name in built_in:
        raise PluginError(f"{origin}: {name!r} names a built-in {kind}; rename it with NAME=...")
    if name in registered and registered[name][1] != origin:
        raise PluginError(f"{origin}: {name!r} is {registered[name][1]} already")


def add_optimizer(text: str, spaces: Mapping[str | None, str | Path] | None = None) -> str:
    """Registers the optimizer `[NAME=]PATH.py:FACTORY` or `[NAME=]module:FACTORY`;
    returns its name (NAME, else the factory's; `optax:X` is named `optax_X`).

    spaces: --space files by optimizer name, None for every optimizer (see
    `space_from_toml`); used where the module declares no OptimizerSpec for the factory.
    """
    name, source, attribute = _split(text)
    module = _module(source)
    value = _attribute(module, source, attribute)
    if name is None:
        target = value.factory if isinstance(value, OptimizerSpec) else value
        name = factory_name(target)
        if source == "optax":
            name = f"optax_{name}"
    origin = f"file {Path(source).resolve()}" if source.endswith(".py") else f"module {source}"
    _check_new(name, "optimizer", _optimizers, OPTIMIZERS, origin)
    spaces = spaces or {}
    space_file = spaces.get(name, spaces.get(None))
    _optimizers[name] = (_as_spec(value, name, space_file, module), origin)
    return name


def load_problem(text: str) -> tuple[Problem, str]:
    """The problem `[NAME=]PATH.py:FACTORY` or `[NAME=]module:FACTORY` names (a Problem,
    or a zero-argument factory returning one), renamed NAME where given, and its origin;
    not registered. Raises PluginError with one line when it cannot be loaded."""
    name, source, attribute = _split(text)
    module = _module(source)
    made = _as_problem(_attribute(module, source, attribute), attribute)
    if name is not None:
        made = replace(made, name=name)
    origin = f"file {Path(source).resolve()}" if source.endswith(".py") else f"module {source}"
    return made, origin


def add_problem(text: str) -> str:
    """Registers the problem `[NAME=]PATH.py:FACTORY` (`load_problem`); returns its name
    (NAME, else the Problem's own)."""
    made, origin = load_problem(text)
    _check_new(made.name, "problem", _problems, PROBLEMS | MODELS, origin)
    _problems[made.name] = (made, origin)
    return made.name
