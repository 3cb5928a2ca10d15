"""Imports run one way (docs/architecture.md): read from the import statements themselves.

Every import of the three packages counts, those inside functions included: a cycle
between two modules is a cycle whether or not one side waits until it is called. The
rules are those of the picture in docs/architecture.md:

    bench (top level: cli, spec, protocols, plugins, suite, check, combine, progress)
      -> report -> analysis -> results        (the folder, then what is made of it)
      -> sweep -> plugins, protocols          (the engine, under jit)
    perf -> sweep, results, spec
    optimizers, problems: never bench
"""

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("optimizers", "problems", "bench")
WINGS = ("sweep", "results", "analysis", "report", "perf")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def _resolve(name: str) -> str | None:
    """The project module `name` is, or the one it is an attribute of; None outside."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, str, int]]:
    """(imported module, the name taken from it or "", line) for each import of `module`
    of a project module; `from package import submodule` counts as the submodule."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    found.append((target, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.append((f"{base}.{alias.name}", "", node.lineno))
                elif _resolve(base):
                    found.append((_resolve(base), alias.name, node.lineno))
    return found


def external_imports(module: str) -> set[str]:
    """The top-level names of every non-project package `module` imports."""
    tree = ast.parse(MODULES[module].read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - set(PACKAGES)


def layer(module: str) -> str:
    """optimizers, problems, bench.WING, or bench (the top level)."""
    parts = module.split(".")
    if parts[0] != "bench":
        return parts[0]
    return f"bench.{parts[1]}" if len(parts) > 1 and parts[1] in WINGS else "bench"


# What each layer may import, besides itself; anything else is a layering error.
ALLOWED = {
    "optimizers": {"optimizers"},
    "problems": {"problems", "optimizers"},
    "bench.sweep": {"optimizers", "problems", "bench.plugins", "bench.protocols"},
    "bench.results": {"optimizers", "problems"},
    "bench.analysis": {"bench.results"},
    "bench.report": {"bench.analysis", "bench.results"},
    "bench.perf": {"optimizers", "problems", "bench.sweep", "bench.results", "bench.spec"},
}
# Packages a layer must not import at all (a view of pandas tables needs no jax).
FORBIDDEN_EXTERNAL = {"bench.analysis": {"jax", "jaxlib", "optax", "matplotlib", "PIL"}}


def allowed(importer: str, imported: str) -> bool:
    source, target = layer(importer), layer(imported)
    if source == "bench":  # the top level drives every wing but perf, which stands apart
        return target != "bench.perf"
    if source == target:
        return True
    rules = ALLOWED[source]
    return target in rules or imported in rules


def graph() -> dict[str, set[str]]:
    edges = defaultdict(set)
    for module in MODULES:
        for target, _, _ in imports(module):
            if target != module:
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for targets in edges.values() for w in targets}):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_wings_and_their_imports():
    """A scan that finds nothing passes every rule: it must see what is known to be there."""
    assert {"bench.sweep.runner", "bench.analysis.tuning", "bench.report.render"} <= set(MODULES)
    assert ("bench.sweep.runner", "run_sweep") in {(t, n) for t, n, _ in imports("bench")}
    assert "bench.analysis.tuning" in graph()["bench.report.tables"]


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_a_cycle_is_found_where_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module):
    wrong = [
        f"line {line}: {target}"
        for target, _, line in imports(module)
        if not allowed(module, target)
    ]
    assert wrong == [], f"{module} imports upward or sideways"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_analysis_uses_no_jax_matplotlib_or_registries(module):
    banned = FORBIDDEN_EXTERNAL.get(layer(module), set())
    assert external_imports(module) & banned == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    """Neither `from m import _name` nor `m._name` on an imported project module."""
    tree = ast.parse(MODULES[module].read_text())
    taken = [f"{t}.{n}" for t, n, _ in imports(module) if n.startswith("_") and t != module]
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                full = (
                    f"{node.module}.{alias.name}"
                    if isinstance(node, ast.ImportFrom) and node.module
                    else alias.name
                )
                if full in MODULES:
                    bound[alias.asname or alias.name.split(".")[-1]] = full
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and bound[node.value.id] != module
        ):
            taken.append(f"{bound[node.value.id]}.{node.attr}")
    assert taken == []
