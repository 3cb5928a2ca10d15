"""meta.json: what produced a results folder (versions, machine, spec, timings), and
its fingerprint: what must match for another folder's numbers to be comparable."""

import datetime
import json
import os
import platform
import subprocess
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import jax

from optimizers import OPTIMIZERS
from problems import MODELS


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


# The spec fields that change a run's numbers, besides steps and grids.
SPEC_FIELDS = ("dtype", "protocol", "seeds", "eval_seeds", "curve_points", "cost", "folds")
# The fingerprint's per-name tables: compared on the names both fingerprints hold.
TABLES = ("steps", "grid")
# What `git_dirty` leaves out: the committed results a run rewrites and the prose, which
# no number depends on (git pathspecs from the repository's top).
NOT_CODE = (":(top,exclude)results", ":(top,exclude)docs", ":(top,exclude,glob)*.md")
# Fields that name the code (the git commit): `--against` reports a difference in them
# and re-runs nothing for it; the suite's version, bumped per release, is what re-runs.
CODE = ("commit",)


def fingerprint(spec) -> dict:
    """Versions of jax, jaxlib and the suite, the git commit, the device kind, the spec
    fields that change numbers, every problem's step budget and every built-in
    optimizer's learning rates."""
    grid = {o: list(spec.learning_rates(o)) for o in spec.optimizers if o in OPTIMIZERS}
    return {
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "suite": _version("optbench"),
        "commit": _git("rev-parse", "HEAD"),
        "device": jax.devices()[0].device_kind,
        **{name: getattr(spec, name) for name in SPEC_FIELDS},
        "steps": {problem: spec.budget(problem) for problem in spec.problems},
        "grid": grid,
        # the model families' size preset, where the spec runs one
        **({"scale": spec.scale} if set(spec.problems) & set(MODELS) else {}),
    }


# Floats of two fingerprints (learning-rate grids) that differ by no more than this
# relative amount are the same: np.logspace rounds the last bit differently by CPU.
FLOAT_RTOL = 1e-9
# Names a difference in a per-name table lists before "and N more".
LISTED = 3


def same(a, b) -> bool:
    """Whether two fingerprint values are equal, floats to FLOAT_RTOL, lists item by item."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, int | float) and isinstance(b, int | float):
            return abs(a - b) <= FLOAT_RTOL * max(abs(a), abs(b))
    return a == b


def differences(ours: dict, theirs: dict, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Field -> "A vs B" for every fingerprint field but `ignore` on which `ours` and
    `theirs` differ (a field one of them lacks differs; floats within FLOAT_RTOL do not);
    steps and grid differ where a name both hold has different values, the first LISTED
    of them named."""
    found = {}
    for field in dict.fromkeys([*ours, *theirs]):
        if field in ignore:
            continue
        a, b = ours.get(field), theirs.get(field)
        if field in TABLES and isinstance(a, dict) and isinstance(b, dict):
            names = [n for n in a if n in b and not same(a[n], b[n])]
            if names:
                listed = [f"{n} {a[n]} vs {b[n]}" for n in names[:LISTED]]
                more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
                found[field] = ", ".join(listed) + more
        elif not same(a, b):
            found[field] = f"{a} vs {b}"
    return found


def collect(spec, timings: dict, skipped: list[dict], devices: int | None = None) -> dict:
    """Versions, platform, devices, dtype, git commit, date, the spec and the timings."""
    device = jax.devices()[0]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *NOT_CODE)
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "matplotlib": _version("matplotlib"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": jax.device_count(),
        "devices_used": [str(d) for d in jax.devices()[: devices or jax.device_count()]],
        "process_count": jax.process_count(),
        "dtype": spec.dtype,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "spec": asdict(spec),
        # as JSON holds it, so that a fingerprint compares equal to one read back
        "fingerprint": json.loads(json.dumps(fingerprint(spec))),
        "skipped": skipped,
        **timings,
    }


def read(folder: Path) -> dict | None:
    """meta.json of `folder`, None where there is none or it is not a JSON object."""
    try:
        record = json.loads((Path(folder) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def spec_field(folder: Path, name: str, default):
    """Field `name` of the spec meta.json records, else `default` (no meta.json, a
    damaged one, or one written before the field)."""
    spec = (read(folder) or {}).get("spec")
    return spec.get(name, default) if isinstance(spec, dict) else default


def dumps(meta: dict) -> str:
    return json.dumps(meta, indent=2, sort_keys=False) + "\n"
