"""The sweep cache: a sweep's outputs kept under a key of everything that determines them,
so that a rerun pays only for the sweeps whose program or inputs changed.

A sweep (`run_sweep`) is one compiled program called on its inputs (the problem's data)
and its lanes (hyperparameter values, seeds, folds). Its outputs are a function of

    the program        its StableHLO text as JAX lowers it (no source locations), and
                       the compile level it is compiled at;
    the inputs         the bytes of the data and of the lane arguments, the lanes per
                       call and the memory limit that may cut them into smaller calls;
    the machine        jax and jaxlib versions, the platform and device kind, the
                       devices the lanes are sharded over, XLA_FLAGS and the CPU's
                       instruction set (a program compiled for AVX2 may round otherwise).

That key (`program_key`) costs a lowering (a tenth of a second to a second per program).
A second key (`quick_key`) costs none: the digest of the source files that can build the
program (`sources_digest`: the files defining the rule and the problem's functions, the
runner's bench/sweep/, every project file they import, transitively, and the data files
under problems/), the sweep's arguments and the same inputs and machine; it names the
program key it was last seen with. A run whose sources did not change finds every sweep
by its quick key; a change to one rule's module misses the quick keys of that rule's
sweeps (and of any rule whose module imports it), which are lowered, and recompiled and
rerun where their program key changed. problems/__init__.py imports every problem
module, so a change to a problem's file misses every quick key. A rule or problem
defined outside the project (a plug-in) is looked up by its program key only.

A unit of a suite (`bench.suite`: a pair, tuned and evaluated, or the pairs of a
problem run together) is kept too, under `unit_key`: the digest of the sources of its
rules and problem and of bench/suite.py's imports (the code that tunes and tabulates),
the whole spec, the unit, the pandas and numpy versions and the machine. A run that
changed nothing reads every unit's tables without looking at its sweeps (a pair's tuning
and tables cost tens of milliseconds, its sweeps' lookups less); a unit that misses has
its sweeps looked up as above. Units are pickled (their pandas version is in the key);
like entries, they are checked by their SHA-256.

An entry holds the program's raw outputs (curves, metrics, the targets' first and lasting
hits), the lanes per call it ran with, its compile level and the compile and run seconds
of the run that made it. Entries are written atomically (a temporary file, then a rename)
and carry the SHA-256 of their content, checked on every read: a damaged entry is
reported in one line, removed and its sweep run again.

Where: `bench.cli.cache_dir()`'s `sweeps/` (the repository's `.cache/`, else the user's
cache folder, or $OPTBENCH_CACHE). `python -m bench cache info|clear`; `--no-cache`.
"""

import ast
import functools
import hashlib
import inspect
import io
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import numpy as np

# The project's checkout: the sources the quick key covers are under it.
ROOT = Path(__file__).resolve().parent.parent.parent
SOURCES = ("optimizers", "problems", "bench/sweep")
# The packages whose source files the keys follow through imports.
PACKAGES = ("optimizers", "problems", "bench")
# What every sweep's program may be built from besides its rule's and problem's files:
# the runner, and the problems' data files.
RUNNER = "bench/sweep"
DATA = "problems"
# A change to what an entry holds or how keys are made changes this: old entries are
# then never found (`clear` removes them).
FORMAT = 1
_DIGEST_BYTES = 32


def digest(*parts) -> str:
    """The SHA-256 of `parts`: bytes as they are, arrays by dtype, shape and bytes,
    mappings in key order, anything else by its repr."""
    h = hashlib.sha256()

    def feed(part):
        if isinstance(part, bytes):
            h.update(b"b%d:" % len(part) + part)
        elif isinstance(part, str):
            feed(part.encode())
        elif isinstance(part, np.ndarray | jax.Array):
            array = np.ascontiguousarray(np.asarray(part))
            feed(f"array {array.dtype.str} {array.shape}")
            h.update(array.tobytes())
        elif isinstance(part, dict):
            feed(f"dict {len(part)}")
            for key in sorted(part, key=repr):
                feed(repr(key))
                feed(part[key])
        elif isinstance(part, list | tuple):
            feed(f"seq {len(part)}")
            for item in part:
                feed(item)
        elif part is None:
            feed("None")
        else:
            feed(f"{type(part).__name__} {part!r}")

    for part in parts:
        feed(part)
    return h.hexdigest()


def tree_digest(tree) -> str:
    """The digest of a pytree of arrays: its structure and every leaf."""
    leaves, structure = jax.tree.flatten(tree)
    return digest(str(structure), *(np.asarray(leaf) for leaf in leaves))


def _isa() -> str:
    """The CPU's widest vector instruction set XLA may compile for, as /proc/cpuinfo
    names it (XLA_FLAGS, which may cap it, are a part of the key of their own)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return next((isa for isa in ("avx512f", "avx2", "avx", "sse4_2") if isa in flags), "base")


def machine_type() -> str:
    """The architecture and widest instruction set of this CPU, say x86_64-avx512f
    (starts no JAX backend)."""
    return f"{platform.machine()}-{_isa()}"


@functools.cache
def machine() -> tuple:
    """What a compiled program's numbers may depend on besides its text and inputs."""
    from importlib.metadata import version

    return (
        FORMAT,
        jax.__version__,
        version("jaxlib"),
        jax.default_backend(),
        tuple(d.device_kind for d in jax.devices()),
        os.environ.get("XLA_FLAGS", ""),
        platform.machine(),
        _isa(),
        bool(jax.config.jax_enable_x64),  # pyright: ignore[reportAttributeAccessIssue]
        str(jax.config.jax_default_matmul_precision),  # pyright: ignore[reportAttributeAccessIssue]
    )


@functools.cache
def source_digest(folders: tuple[str, ...]) -> str:
    """The digest of every file under `folders` of the checkout (read once per process)."""
    files = sorted(
        path
        for folder in folders
        for path in ((ROOT / folder).rglob("*") if (ROOT / folder).is_dir() else [ROOT / folder])
        if path.is_file() and "__pycache__" not in path.parts
    )
    return digest(*((str(p.relative_to(ROOT)), p.read_bytes()) for p in files))


def _source_file(function: Callable) -> Path | None:
    """The file `function` is defined in (through partials and wrappers), if any."""
    while isinstance(function, functools.partial):
        function = function.func
    function = inspect.unwrap(function)  # a function under functools.cache, say
    try:
        source = inspect.getsourcefile(function)
    except TypeError:  # a builtin or a callable object without a source file
        source = inspect.getsourcefile(type(function)) if callable(function) else None
    return None if source is None else Path(source).resolve()


def _defined_in_project(functions: Iterable[Callable | None]) -> bool:
    """True when every one of `functions` is defined in a file under SOURCES."""
    folders = [ROOT / folder for folder in SOURCES]
    for function in functions:
        if function is None:
            continue
        path = _source_file(function)
        if path is None or not any(path.is_relative_to(folder) for folder in folders):
            return False
    return True


def _module_file(name: str) -> Path | None:
    """The source file of the project's module `name` (dotted), if it is one."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


_PARSE_LOCK = threading.Lock()


@functools.cache
def _imports(path: Path) -> frozenset[Path]:
    """The project's files that the file `path` imports, and the packages' __init__.py
    files the imports run (static `import` and `from ... import` statements; a name
    imported from a package may be a module of it)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    with _PARSE_LOCK:  # CPython 3.11's parser is not safe in two threads at once
        tree = ast.parse(path.read_bytes())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            module = node.module or ""
            if node.level:
                module = f"{parent}.{module}" if module else parent
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    files = set()
    for name in names:
        parts = name.split(".")
        files |= {_module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)}
    return frozenset(files - {None})


def sources(starts: Iterable[Path]) -> list[Path]:
    """The project's files a sweep of code in `starts` can run: those, the runner's, the
    files they import, transitively, and every data file under problems/."""
    seen: set[Path] = set()
    todo = [*starts, *(ROOT / RUNNER).glob("*.py")]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imports(path)
    data = [p for p in (ROOT / DATA).rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    return sorted(seen | set(data))


@functools.cache
def sources_digest(starts: frozenset[Path]) -> str:
    """The digest of `sources(starts)`, their paths and contents (read once per process)."""
    return digest(*((str(p.relative_to(ROOT)), p.read_bytes()) for p in sources(starts)))


def _starts(functions: Iterable[Callable | None]) -> frozenset[Path]:
    paths = (_source_file(function) for function in functions if function is not None)
    return frozenset(path for path in paths if path is not None)


def _problem_functions(problem) -> tuple:
    return (
        problem.init,
        problem.loss,
        problem.data,
        problem.sample_batch,
        problem.test_data,
        problem.layer_grad_norms,
        *problem.metrics.values(),
    )


def _problem_facts(problem) -> tuple:
    return (
        problem.name,
        problem.dim,
        problem.steps,
        problem.target,
        problem.f_star,
        sorted(problem.tags),
        problem.fixed_start,
        problem.f_star_from_run,
    )


def quick_key(problem, factory, arguments: tuple, inputs_digest: str) -> str | None:
    """The key of a sweep that needs no lowering, or None where the rule or the problem
    is defined outside the project's sources (then only `program_key` finds it)."""
    if not _defined_in_project((factory, *_problem_functions(problem))):
        return None
    functions = (factory, *_problem_functions(problem))
    facts = _problem_facts(problem)
    sources = sources_digest(_starts(functions))
    return digest("quick", sources, machine(), facts, arguments, inputs_digest)


# What a unit of a suite (`bench.suite`: a pair, or a problem's pairs) depends on besides
# its rules' and problem's files and the sweeps: the code that tunes and tabulates them.
UNIT_CODE = "bench/suite.py"


def unit_key(problem, factories, arguments: tuple) -> str | None:
    """The key of a unit of a suite: the digest of every source of the project, the
    library versions its tables are made with, `problem`'s facts and `arguments` (the
    unit, the whole spec), the machine; None where a rule or the problem is defined
    outside the project."""
    from importlib.metadata import version

    functions = (*factories, *_problem_functions(problem))
    if not _defined_in_project(functions):
        return None
    libraries = [version(name) for name in ("pandas", "numpy")]
    facts = _problem_facts(problem)
    sources = sources_digest(_starts(functions) | {ROOT / UNIT_CODE})
    return digest("unit", sources, machine(), libraries, facts, arguments)


def program_key(lowered_text: str, options: dict, arguments: tuple, inputs_digest: str) -> str:
    """The key of a sweep by its lowered program, compiler options, inputs and machine."""
    options_items = sorted(options.items())
    return digest("program", machine(), lowered_text, options_items, arguments, inputs_digest)


def _pack(outputs) -> dict[str, np.ndarray]:
    """A sweep's outputs (curves, metrics, reached: `lane.lane_program`'s) as named arrays."""
    curves, metrics, reached = outputs
    arrays = {f"curves/{k}": np.asarray(v) for k, v in curves.items()}
    arrays |= {f"metrics/{k}": np.asarray(v) for k, v in metrics.items()}
    for kind, pair in (reached or {}).items():
        arrays |= {f"reached/{kind}/{i}": np.asarray(v) for i, v in enumerate(pair)}
    return arrays


def _unpack(arrays: dict[str, np.ndarray], has_reached: bool):
    """`_pack`'s arrays as the outputs again."""

    def part(kind):
        prefix = f"{kind}/"
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    reached = None
    if has_reached:
        split = {}
        for name, array in part("reached").items():
            kind, index = name.rsplit("/", 1)
            split.setdefault(kind, {})[int(index)] = array
        reached = {kind: tuple(pair[i] for i in sorted(pair)) for kind, pair in split.items()}
    return part("curves"), part("metrics"), reached


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


class SweepCache:
    """Sweep outputs under `folder`: `entries/KEY` (content) and `quick/KEY` (the program
    key a quick key was last seen with). Safe for the threads of one run and for
    concurrent runs: every write is a rename of a complete file."""

    def __init__(self, folder: Path | str, warn=None):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self.unit_hits = 0
        self._warn = warn or _to_stderr
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """What a worker process is given (`bench.pool`): the folder and how to warn, the
        counts starting at 0 there (`counts`, `add_counts` bring them back)."""
        return {"folder": self.folder, "warn": self._warn}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"], state["warn"])

    def counts(self) -> tuple[int, int, int]:
        """(hits, misses, unit_hits) so far."""
        return self.hits, self.misses, self.unit_hits

    def add_counts(self, counts: tuple[int, int, int]) -> None:
        """Adds what a copy of this cache in a worker process counted (`counts`)."""
        with self._lock:
            self.hits += counts[0]
            self.misses += counts[1]
            self.unit_hits += counts[2]

    def _path(self, kind: str, key: str) -> Path:
        return self.folder / kind / key[:2] / key

    def _write(self, path: Path, payload: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(hashlib.sha256(payload).digest() + payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _read(self, path: Path) -> bytes | None:
        """The payload at `path`, None where there is none; a damaged one is removed with
        one line."""
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            self._warn(f"sweep cache: cannot read {path} ({error.strerror}); running the sweep")
            return None
        payload = content[_DIGEST_BYTES:]
        if hashlib.sha256(payload).digest() != content[:_DIGEST_BYTES]:
            self._warn(f"sweep cache: {path} is damaged; running its sweep again")
            path.unlink(missing_ok=True)
            return None
        return payload

    def program_key_of(self, quick: str | None) -> str | None:
        """The program key `quick` was last stored with, if any."""
        if quick is None:
            return None
        payload = self._read(self._path("quick", quick))
        return None if payload is None else payload.decode()

    def get(self, key: str | None) -> tuple[tuple, dict] | None:
        """The outputs (`lane.lane_program`'s curves, metrics and reached) and the facts
        stored under `key`, or None."""
        if key is None:
            return None
        payload = self._read(self._path("entries", key))
        if payload is None:
            return None
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
                facts = json.loads(str(stored["__facts__"]))
                arrays = {name: stored[name] for name in stored.files if name != "__facts__"}
            outputs = _unpack(arrays, facts["reached"])
        except (ValueError, KeyError, OSError) as error:
            self._warn(f"sweep cache: entry {key[:12]} is unreadable ({error}); running again")
            self._path("entries", key).unlink(missing_ok=True)
            return None
        with self._lock:
            self.hits += 1
        return outputs, facts

    def put(self, key: str, quick: str | None, outputs, facts: dict) -> None:
        """Stores `outputs` (curves, metrics, reached) and `facts` (JSON) under `key`, and
        `key` under `quick`."""
        buffer = io.BytesIO()
        record = json.dumps({**facts, "reached": outputs[2] is not None})
        arrays = {"__facts__": np.array(record), **_pack(outputs)}
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        self._write(self._path("entries", key), buffer.getvalue())
        self.remember(quick, key)
        with self._lock:
            self.misses += 1

    def remember(self, quick: str | None, key: str) -> None:
        """Notes that the sweep of quick key `quick` has program key `key`."""
        if quick is not None:
            self._write(self._path("quick", quick), key.encode())

    def get_unit(self, key: str | None) -> dict | None:
        """The result (`bench.suite` unit: tables, facts, seconds) stored under `key`."""
        if key is None:
            return None
        payload = self._read(self._path("units", key))
        if payload is None:
            return None
        try:
            found = pickle.loads(payload)
        except Exception as error:  # a payload of another pandas, or damaged within
            self._warn(f"sweep cache: unit {key[:12]} is unreadable ({error}); running it")
            self._path("units", key).unlink(missing_ok=True)
            return None
        with self._lock:
            self.unit_hits += 1
        return found

    def put_unit(self, key: str, result: dict) -> None:
        """Stores a unit's `result` (pickled: tables of pandas, the version in the key)."""
        self._write(self._path("units", key), pickle.dumps(result))

    def info(self) -> dict:
        """Entries, their bytes and the folder."""
        entries = [p for p in (self.folder / "entries").rglob("*") if p.is_file()]
        return {
            "folder": str(self.folder),
            "entries": len(entries),
            "bytes": sum(p.stat().st_size for p in entries),
        }

    def clear(self) -> int:
        """Removes every entry; returns how many there were."""
        count = self.info()["entries"]
        for kind in ("entries", "quick", "units"):
            shutil.rmtree(self.folder / kind, ignore_errors=True)
        return count
