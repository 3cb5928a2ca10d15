"""`make mutation`'s catalogue still points at code that exists (it stops otherwise)."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = tomllib.loads((ROOT / "tests" / "mutation" / "mutations.toml").read_text())


@pytest.mark.parametrize(
    "mutation", CATALOGUE["mutation"], ids=lambda m: f"{m['file']}: {m['description']}"
)
def test_each_mutation_finds_its_code_exactly_once(mutation):
    source = (ROOT / mutation["file"]).read_text()
    assert source.count(mutation["original"]) == 1, mutation["original"]
    assert mutation["replacement"] != mutation["original"]
