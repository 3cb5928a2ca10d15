"""meta.json: what produced a results folder (versions, machine, spec, timings)."""

import datetime
import json
import os
import platform
import subprocess
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import jax

from bench.spec import SuiteSpec


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


def collect(
    spec: SuiteSpec, timings: dict, skipped: list[dict], devices: int | None = None
) -> dict:
    """Versions, platform, devices, dtype, git commit, date, the spec and the timings."""
    device = jax.devices()[0]
    status = _git("status", "--porcelain", "--untracked-files=no")
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
        "skipped": skipped,
        **timings,
    }


def dumps(meta: dict) -> str:
    return json.dumps(meta, indent=2, sort_keys=False) + "\n"
