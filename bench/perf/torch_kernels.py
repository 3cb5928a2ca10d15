"""Update kernels against their PyTorch references: each rule whose registry entry names
a PyTorch class as its `reference` (the implementation its parity tests prove it equal
to, e.g. "pytorch-optimizer 4.1.0 LaProp") timed beside that class, in one process.

Ours is bench.perf.kernels' kernel, `(params, state, grads) -> (params, state)` jitted
with params and state donated; theirs is one `optimizer.step()` on a float32 torch
tensor whose `.grad` is set once. Both start from the same numbers, the kernels' params
(N(0, 1)) and grads (1e-2 cos(params)), and the two calls are timed in turn
(`kernels.interleaved_medians`). torch runs on one thread (`torch.set_num_threads(1)`,
restored after), as bench.perf.sweeps' torch rows do; ours as XLA:CPU runs it.

Layout: a rule that treats a matrix otherwise than as its entries one by one
(`takes_matrix`) gets one matrix of about n entries on both sides, `matrix_shape(n)`;
every other rule one flat vector of n. The reference is configured so that the matrix
takes its matrix path: the Muon family's parameter group has `use_muon=True`,
APOLLO's and Fira's group their projection options (`GROUP_OPTIONS`).

Hyperparameters (`reference_kwargs`): the learning rate is `kernels.LEARNING_RATE`;
each of our factory's arguments (its default, or the registry's `hparams`) is passed
where the reference takes it under the same name or a plain rename (`RENAMES`: lr for
learning_rate, ...; `betas` gathered from b1, b2, b3 and beta0, `nus` from nu1 and nu2,
`adamw_betas` from adamw_b1 and adamw_b2); the reference string's own options
(`AdaBound(ams_bound=True)`) come last. An enum-valued option takes our string or
number (ScalableShampoo's `graft_type`), a torch dtype our dtype. Everything else is
the reference's default: our functions (ADOPT's clipping schedule, whose default is the
reference's), keys and masks; options that mean the same under another name or sense
(APOLLO's `disable_nl` for our `norm_growth_limiter`) at the defaults both sides share;
and what no argument sets, such as the precision of pytorch-optimizer's Newton-Schulz
iterations (bfloat16; ours float32) and the reference's `foreach` choice.

The step timed is the median one: work a rule does every k steps (a preconditioner's
refresh, a new projection) falls outside it on both sides alike.
"""

import ast
import contextlib
import importlib
import importlib.util
import inspect
import math
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch  # pyright: ignore[reportMissingImports]  # the optional `perf` extra

from bench.perf import kernels
from optimizers import OPTIMIZERS, OptimizerSpec

SIZES = (100_000, 1_000_000)
# `python -m bench.perf --quick`: one element-wise rule and one matrix rule, tiny.
QUICK_SIZES = (1_000,)
QUICK_RULES = ("laprop", "adamuon")

# The packages a reference may name (distribution -> import name).
PACKAGES = {
    "pytorch-optimizer": "pytorch_optimizer",
    "timm": "timm",
    "apollo-torch": "apollo_torch",
    "schedulefree": "schedulefree",
}
# Classes of packages whose __init__ imports what a CPU install of torch lacks (timm's
# imports torchvision; apollo-torch's, bitsandbytes and transformers): the class's own
# module is loaded without it, as the parity tests load it. (package, class) ->
# (folder inside the package, module, name of the class in that module).
STANDALONE = {
    ("timm", "AdamWLegacy"): ("optim", "adamw", "AdamWLegacy"),
    ("timm", "NAdamW"): ("optim", "nadamw", "NAdamW"),
    ("apollo-torch", "APOLLOAdamW"): ("", "apollo", "AdamW"),
}
# Our argument name -> the reference's, where only the name differs; per class where
# another class uses the name otherwise.
RENAMES = {
    "learning_rate": "lr",
    "learning_rate_1d": "lr_1d",
    "adamw_learning_rate": "adamw_lr",
    "adamw_weight_decay": "adamw_wd",
}
CLASS_RENAMES = {"SCION": {"alpha": "momentum"}, "SCIONLight": {"alpha": "momentum"}}
# The reference's tuple arguments and the arguments of ours they gather, in order.
TUPLES = {
    "betas": ("b1", "b2", "b3", "beta0"),
    "nus": ("nu1", "nu2"),
    "adamw_betas": ("adamw_b1", "adamw_b2"),
}
# Options a reference reads from the parameter group of a matrix: fixed values, and the
# names of ours passed there as they are.
GROUP_OPTIONS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "AdaMuon": ({"use_muon": True}, ()),
    "NorMuon": ({"use_muon": True}, ()),
    "APOLLOAdamW": (
        {"proj": "random", "proj_type": "std"},
        ("rank", "update_proj_gap", "scale", "scale_type"),
    ),
    "Fira": ({"projection_type": "std"}, ("rank", "update_proj_gap", "scale")),
}
# References that take a torch module, not tensors: it holds the tensor as `WEIGHT`.
MODULE_PARAMETERS = ("AdamMini",)
# The small matrix `takes_matrix` compares with its entries as a vector.
PROBE_SHAPE = (16, 24)
# The name of the reference's module parameter where it takes a module.
WEIGHT = "weight"

_REFERENCE = re.compile(r"(?P<package>\S+) (?P<version>\S+) (?P<name>\w+)(?:\((?P<options>.*)\))?")


@dataclass(frozen=True)
class Reference:
    """A parsed `OptimizerSpec.reference` that names a PyTorch class."""

    package: str  # the distribution, e.g. "pytorch-optimizer"
    version: str  # the version the parity tests ran against
    name: str  # the class, e.g. "AdaBound"
    options: dict[str, Any] = field(default_factory=dict)  # literal keyword options
    inner: str | None = None  # a wrapped optimizer class, e.g. "torch.optim.Adam"


def parse_reference(text: str | None) -> Reference | None:
    """The PyTorch class `text` names, or None where it names none (an optax function,
    prose); a reference of a known package that does not parse is an error."""
    if not text or text.split(" ", 1)[0] not in PACKAGES:
        return None
    match = _REFERENCE.fullmatch(text)
    if match is None:
        raise ValueError(f"reference {text!r} is not 'package version Class(options)'")
    call = ast.parse(f"f({match['options'] or ''})", mode="eval").body
    assert isinstance(call, ast.Call)
    if len(call.args) > 1 or any(kw.arg is None for kw in call.keywords):
        raise ValueError(f"reference {text!r}: one wrapped class and keyword options at most")
    options = {str(kw.arg): ast.literal_eval(kw.value) for kw in call.keywords}
    inner = ast.unparse(call.args[0]) if call.args else None
    return Reference(match["package"], match["version"], match["name"], options, inner)


def torch_reference(spec: OptimizerSpec) -> Reference | None:
    """The PyTorch class `spec.reference` names, if any, whether or not it is installed."""
    return parse_reference(spec.reference)


def installed(reference: Reference) -> bool:
    return importlib.util.find_spec(PACKAGES[reference.package]) is not None


@contextlib.contextmanager
def _version_check_stand_in() -> Iterator[None]:
    """apollo-torch's module imports transformers' `require_version` (a version check
    of torch): a stand-in that accepts, where transformers is not installed, in
    sys.modules while the module loads only."""
    if importlib.util.find_spec("transformers") is not None:
        yield
        return
    names = ("transformers", "transformers.utils", "transformers.utils.versions")
    stubs = {name: types.ModuleType(name) for name in names}
    vars(stubs[names[-1]])["require_version"] = lambda *args, **kwargs: None
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


def _standalone(package: str, folder: str, module: str):
    """`module` of the import package `package`'s `folder`, loaded without running the
    package's (or the folder's) __init__: under a private package named after it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{package} is not installed")
    alias = f"_perf_{package}_{folder}".rstrip("_")
    if alias not in sys.modules:
        stub = types.ModuleType(alias)
        stub.__path__ = [str(Path(spec.origin).parent / folder)]
        sys.modules[alias] = stub
    with _version_check_stand_in():
        return importlib.import_module(f"{alias}.{module}")


def _dotted(name: str):
    """The object a dotted name such as torch.optim.Adam names."""
    module, attribute = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attribute)


def reference_class(reference: Reference) -> type:
    """The class itself, imported from its package."""
    key = (reference.package, reference.name)
    if key in STANDALONE:
        folder, module, name = STANDALONE[key]
        return getattr(_standalone(PACKAGES[reference.package], folder, module), name)
    return getattr(importlib.import_module(PACKAGES[reference.package]), reference.name)


def our_hyperparameters(spec: OptimizerSpec) -> dict[str, Any]:
    """Every argument our factory is built with in the kernels: its defaults, the
    registry's hparams, and the kernels' learning rate."""
    signature = inspect.signature(spec.factory).parameters
    defaults = {
        name: parameter.default
        for name, parameter in signature.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return defaults | spec.hparams | {"learning_rate": kernels.LEARNING_RATE}


def _convert(value: Any, default: Any) -> Any:
    """Our value as the reference's argument of default `default` takes it."""
    if value is None or isinstance(value, Enum):
        return value
    if isinstance(default, Enum):
        kind = type(default)
        return kind[value.upper()] if isinstance(value, str) else kind(value)
    if isinstance(default, torch.dtype):
        return getattr(torch, np.dtype(value).name)
    return value


def _plain(value: Any) -> bool:
    """Whether a value of ours can be handed to torch as it is or as `_convert` turns it:
    None, a number, a string, a dtype or a tuple of them (not a function, a key, a mask
    or an array)."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, type):  # jnp.float32 and np.float32 are classes
        return isinstance(getattr(value, "dtype", None), np.dtype) or issubclass(value, np.generic)
    return value is None or isinstance(value, bool | int | float | str | np.dtype)


def reference_kwargs(cls: Callable, ours: dict[str, Any], renames: dict[str, str]) -> dict:
    """The keyword arguments of `cls` that our hyperparameters `ours` set (the module
    docstring says how); the others are left to the reference's defaults."""
    parameters = inspect.signature(cls).parameters
    defaults = {name: p.default for name, p in parameters.items()}
    kwargs = {}
    for name, parts in TUPLES.items():
        default = defaults.get(name)
        given = [part for part in parts if part in ours]
        if isinstance(default, tuple) and len(given) == len(default):
            kwargs[name] = tuple(ours[part] for part in given)
    for ours_name, value in ours.items():
        name = renames.get(ours_name, ours_name)
        if name in defaults and name not in kwargs and _plain(value):
            kwargs[name] = _convert(value, defaults[name])
    return kwargs


def build_reference(spec: OptimizerSpec, tensor):
    """The reference optimizer of our rule over the torch tensor `tensor` (its `.grad`
    set by the caller), in training mode where it has one (schedulefree's)."""
    reference = torch_reference(spec)
    if reference is None:
        raise ValueError(f"{spec.reference!r} names no PyTorch class")
    cls = reference_class(reference)
    ours = our_hyperparameters(spec)
    renames = RENAMES | CLASS_RENAMES.get(reference.name, {})
    fixed, passed = GROUP_OPTIONS.get(reference.name, ({}, ()))
    group = {"params": [tensor]}
    if tensor.dim() == 2:
        group |= fixed | {name: ours[name] for name in passed}
    torch.manual_seed(0)  # ScalableShampoo's power iterations start from torch.randn
    if reference.inner is not None:  # Lookahead(torch.optim.Adam): ours set both
        inner_cls = _dotted(reference.inner)
        inner = inner_cls([group], **reference_kwargs(inner_cls, ours, renames))
        kwargs = reference_kwargs(cls, ours, renames) | reference.options
        optimizer = cls(inner, **kwargs)
    elif reference.name in MODULE_PARAMETERS:
        module = torch.nn.Module()
        module.register_parameter(WEIGHT, tensor)
        optimizer = cls(module, **reference_kwargs(cls, ours, renames) | reference.options)
    else:
        optimizer = cls([group], **reference_kwargs(cls, ours, renames) | reference.options)
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()
    return optimizer


def to_torch(params, grads):
    """A float32 torch parameter holding `params`, its `.grad` holding `grads` (copies)."""
    tensor = torch.nn.Parameter(torch.tensor(np.asarray(params)))
    tensor.grad = torch.tensor(np.asarray(grads))
    return tensor


def matrix_shape(n: int) -> tuple[int, int]:
    """rows x cols = n with rows the largest divisor of n up to sqrt(n): 250 x 400 for
    1e5, 1000 x 1000 for 1e6."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return rows, n // rows


def takes_matrix(spec: OptimizerSpec) -> bool:
    """Whether our rule treats a matrix otherwise than as its entries one by one: it is
    for matrices only, its state on a `PROBE_SHAPE` matrix has other leaves than on the
    same entries as a vector, or its first update of the matrix is not that of the
    vector."""
    if spec.matrix_only:
        return True
    opt = spec.factory(learning_rate=kernels.LEARNING_RATE, **spec.hparams)
    matrix = kernels.flat_params(math.prod(PROBE_SHAPE)).reshape(PROBE_SHAPE)

    def leaf_sizes(params) -> list[int]:
        return sorted(x.size for x in jax.tree.leaves(jax.eval_shape(opt.init, params)))

    if leaf_sizes(matrix) != leaf_sizes(matrix.ravel()):
        return True

    def first_update(params):
        grads = jax.tree.map(lambda p: 1e-2 * jnp.cos(p), params)
        return opt.update(grads, opt.init(params), params)[0]

    as_matrix = jax.jit(first_update)(matrix)
    as_vector = jax.jit(first_update)(matrix.ravel())
    return not np.allclose(np.ravel(as_matrix), as_vector, rtol=1e-5, atol=1e-12)


def inputs(layout: str, n: int):
    """The kernels' params and grads for n parameters, as one vector or one matrix."""
    params = kernels.flat_params(n)
    if layout == "matrix":
        params = params.reshape(matrix_shape(n))
    return params, jnp.asarray(1e-2 * np.cos(params))


def time_pair(spec: OptimizerSpec, params, grads) -> dict[str, dict]:
    """Median seconds of our kernel and of one reference step, interleaved; ours with
    its compile seconds."""
    opt, step = kernels.build(spec, "ours")
    ours = kernels.compile_kernel(opt, step, params, grads)  # warmed up
    tensor = to_torch(params, grads)
    optimizer = build_reference(spec, tensor)
    optimizer.step()  # warm-up: the reference allocates its state
    n = params.size
    seconds = kernels.interleaved_medians(
        {"ours": ours["call"], "torch": optimizer.step},
        budget=kernels.timing_budget(n),
        max_reps=400,
    )
    return {
        "ours": {"seconds": seconds["ours"], "compile_seconds": ours["compile_seconds"]},
        "torch": {"seconds": seconds["torch"]},
    }


def run_torch_kernels(sizes=SIZES, names=None, log=print) -> tuple[list[dict], list[str]]:
    """Times each rule of `names` (default: every registered one) that names an
    installed PyTorch class beside it, at each size.

    Returns (rows, notes): a row per (rule, size, impl in ours and torch) with section
    "torch_kernel", layout "flat" or "matrix" and the reference in `reference`; a note
    per rule or size not timed, and per package not installed, saying why.
    """
    names = list(OPTIMIZERS) if names is None else names
    rows, notes, missing = [], [], {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in names:
            spec = OPTIMIZERS[name]
            try:
                reference = torch_reference(spec)
            except (ValueError, SyntaxError) as error:
                notes.append(f"{name}: its reference does not parse: {error}")
                continue
            if reference is None:
                continue
            if not installed(reference):
                missing.setdefault(reference.package, []).append(name)
                continue
            version = metadata.version(reference.package)
            if version != reference.version:
                notes.append(
                    f"{name}: timed against {reference.package} {version}, not the "
                    f"{reference.version} of its parity tests"
                )
            layout = "matrix" if takes_matrix(spec) else "flat"
            for n in sizes:
                rows += _timed_rows(spec, name, layout, n, min(sizes), notes)
            log(f"torch kernels: {name} done")
    finally:
        torch.set_num_threads(threads)
    for package, rules in missing.items():
        notes.append(f"{package} is not installed: {', '.join(rules)} not timed against torch")
    return rows, notes


def _timed_rows(spec, name, layout, n, smallest, notes) -> list[dict]:
    """The rows of one rule at one size, or none and a note saying why."""
    params, grads = inputs(layout, n)
    ratio = kernels.state_ratio(spec, params)
    where = f"{name} (torch, {layout}, n={n})"
    if n > smallest and ratio > kernels.MAX_STATE_RATIO:
        notes.append(f"{where}: its state would be {ratio:,.0f}x the parameters, not timed")
        return []
    try:
        results = time_pair(spec, params, grads)
    except Exception as error:  # a reference that fails must not stop the report
        notes.append(f"{where}: {type(error).__name__}: {error}")
        return []
    return [
        dict(section="torch_kernel", case=name, impl=impl, layout=layout, size=n, lanes=1)
        | dict(reference=spec.reference, **result)
        for impl, result in results.items()
    ]
