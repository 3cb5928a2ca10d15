"""The targets of `make perf`, as data: bench/perf/targets.toml (each entry documented there)."""

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

TARGETS_FILE = Path(__file__).with_name("targets.toml")


@dataclass(frozen=True)
class Targets:
    parity_limit: float
    parity_sizes: tuple[int, ...]
    adam_speedup: float
    torch_target: float
    model_keywords: tuple[str, ...]
    compile_share: float
    compile_budget_seconds: float
    sweep_targets: dict[str, float]


def load(path: Path = TARGETS_FILE) -> Targets:
    """The targets in `path`; every entry of `Targets` is required, and no other."""
    data = tomllib.loads(path.read_text())
    expected = {field.name for field in fields(Targets)}
    if set(data) != expected:
        missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
        raise ValueError(f"{path}: missing entries {missing}, unknown entries {unknown}")
    return Targets(
        parity_limit=float(data["parity_limit"]),
        parity_sizes=tuple(int(n) for n in data["parity_sizes"]),
        adam_speedup=float(data["adam_speedup"]),
        torch_target=float(data["torch_target"]),
        model_keywords=tuple(str(word) for word in data["model_keywords"]),
        compile_share=float(data["compile_share"]),
        compile_budget_seconds=float(data["compile_budget_seconds"]),
        sweep_targets={str(word): float(goal) for word, goal in data["sweep_targets"].items()},
    )


TARGETS = load()
