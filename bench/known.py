"""What this process knows of the names a results folder holds, for the views.

A folder written by `bench run` carries its problems' facts in problems.csv (parameter
count, description, tags, whether a model family), so that its views need nothing
else. For an older folder, and for what a folder does not hold (an optimizer's search
space, the module that defines it, a 2-D problem's loss function for a contour plot),
the top level asks the registries here (built-in, entry points, --problem and
--optimizer files, optional sources) and hands the answer to the report as a `Known`.
"""

import sys
from pathlib import Path

import pandas as pd

from bench import plugins
from bench.report.render import Known
from bench.results import schema
from problems import MODELS, Problem, sources


def problem_facts(name: str, scale: str = "cpu") -> dict | None:
    """problems.csv's descriptive columns of problem `name` (a model family at `scale`);
    a listed source's problem (CUTEst's) from its list, without building it. None for a
    name no registry holds."""
    source = sources.source_of(name)
    if source is not None and source.listed:
        dim = source.facts(name)[0]
        description = f"{source.description}, {dim} parameters"
        return _row(name, dim, description, source.name, False)
    try:
        known = plugins.problem(name, scale)
    except (KeyError, ValueError):
        return None
    tags = " ".join(sorted(known.tags))
    return _row(name, known.dim, known.description, tags, name in MODELS, known.baselines)


def baselines_text(baselines) -> str:
    """A problem's `baselines` as problems.csv writes them: "metric: model value, ...",
    metrics separated by "; " ("" for none)."""
    return "; ".join(
        f"{metric}: " + ", ".join(f"{model} {value:.4g}" for model, value in models.items())
        for metric, models in baselines.items()
    )


def _row(name: str, dim: int, description: str, tags: str, model_family: bool, baselines=None):
    return {
        "problem": name,
        "dim": dim,
        "description": description,
        "tags": tags,
        "model_family": model_family,
        "group": sources.group(name),
        "baselines": baselines_text(baselines or {}),
    }


def facts_frame(names, scale: str = "cpu") -> pd.DataFrame:
    """`problem_facts` of every name a registry holds, as problems.csv's rows."""
    rows = [row for name in names if (row := problem_facts(name, scale)) is not None]
    return pd.DataFrame(rows).reindex(columns=list(schema.PROBLEM_FACTS))


def family(optimizer: str) -> str:
    """The name of the file that defines the optimizer's factory: its family module in
    optimizers/ (adam for adamw), or a user's file; "" when unknown."""
    try:
        factory = plugins.optimizer(optimizer).factory
    except KeyError:
        return ""
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    return Path(file).stem if file else ""


def space(optimizer: str) -> dict:
    """The optimizer's search space (hyperparameter -> its dimension), {} when unknown."""
    try:
        return plugins.optimizer(optimizer).space()
    except KeyError:
        return {}


def problem(name: str) -> Problem | None:
    """The problem `name` (its loss function); None for a name no registry holds and for
    a listed source's problem (building one costs more than its contour)."""
    source = sources.source_of(name)
    if source is not None and source.listed:
        return None
    try:
        return plugins.problem(name)
    except (KeyError, ValueError):
        return None


def known(scale: str = "cpu") -> Known:
    """Everything above, as the report takes it."""
    return Known(
        facts=lambda names: facts_frame(names, scale),
        family=family,
        space=space,
        problem=problem,
    )
