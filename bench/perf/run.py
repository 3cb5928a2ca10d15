"""`python -m bench.perf` (what `make perf` calls; bench/perf/__main__.py runs `main`): speed,
measured side by side in one run.

Writes to the output folder (default results/):

- perf.csv: one row per measurement (section, case, impl, layout, size, lanes, ...);
- PERF.md (bench.perf.report): the targets (bench/perf/targets.toml) with the ratios
  measured in this run, the tables behind them and the prose explaining them
  (bench/perf/explanations.md), the machine, the versions and the load average;
- perf_kernels.png, perf_scaling.png, perf_sweeps.png: log-log plots (bench.perf.report).

Sections: update kernels of every registered optimizer, ours and optax's (bench.perf.kernels),
and ours against the PyTorch class each rule is proven equal to, where its registry entry
names one and torch is installed (bench.perf.torch_kernels);
whole-sweep throughput against one-run-at-a-time optax and torch loops, and its growth
with the lane count (bench.perf.sweeps), on the CNN and the transformer at cpu scale
against a per-trial optax loop (bench.perf.models); compile time of `make bench`'s programs and the
persistent compilation cache (bench.perf.compile_time); whole `bench run`s on a subset, cold
against warm and one process against two shards (bench.perf.suite_runs). `--quick` runs
every code path on tiny sizes in seconds (for tests; its numbers mean nothing), the torch
references on `torch_kernels.QUICK_RULES`.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import pandas as pd

from bench.perf import compile_time, kernels, models, report, suite_runs, sweeps
from bench.perf.targets import TARGETS
from bench.results.files import locked_when_free, write_csv, write_text
from optimizers import OPTIMIZERS

KERNEL_SIZES = (1_000, 100_000, 1_000_000, 10_000_000)
LANE_COUNTS = (1, 4, 16, 64, 256, 1024, 4096)
# Kernels timed again under multi-output fusion, also in `optimizers.fused_step`.
FUSED_KERNELS = ("sgd", "momentum", "rmsprop", "adam", "adamw")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": f"{device.platform}: {device.device_kind}",
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "torch": sweeps.torch_version() or "not installed",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(quick: bool, names: list[str], log) -> tuple[pd.DataFrame, list[str], dict]:
    """Runs every section; returns the tidy rows, notes, and the run's facts."""
    facts: dict[str, Any] = {"load_before": load_average()}
    start = time.perf_counter()
    if quick:
        sizes, lane_counts, compile_budget = (1_000, 4_000), (1, 4), 0.0
    else:
        sizes, lane_counts = KERNEL_SIZES, LANE_COUNTS
        compile_budget = TARGETS.compile_budget_seconds

    rows, notes = kernels.run_kernels(sizes, names=names, log=log)
    rows += kernels.donation_rows(["sgd", "adam"], sizes[-1])
    rows += kernels.multi_output_fusion_rows(FUSED_KERNELS, sizes[-1])
    if sweeps.torch_version() is None:
        notes.append("torch is not installed: no kernel timed against a PyTorch reference")
    else:
        from bench.perf import torch_kernels

        torch_rows, torch_notes = torch_kernels.run_torch_kernels(
            torch_kernels.QUICK_SIZES if quick else torch_kernels.SIZES,
            list(torch_kernels.QUICK_RULES) if quick else names,
            log=log,
        )
        rows += torch_rows
        notes += torch_notes
    facts["load_after_kernels"] = load_average()

    cases = sweeps.default_cases(quick)
    rows += sweeps.run_sweeps(cases, log=log)
    rows += sweeps.elementwise_rows()
    rows += sweeps.lane_scaling(cases[:2], lane_counts, log=log)
    rows += models.run_models(models.model_cases(quick), log=log)
    facts["load_after_sweeps"] = load_average()

    pairs = compile_time.sample_pairs()
    rows += compile_time.compile_rows(pairs, compile_budget, quick, log)
    cache_pairs = [("rosenbrock_2d", "adam"), ("logistic_synthetic_200x10", "momentum")]
    rows += compile_time.cache_effect(cache_pairs[: 1 if quick else None], quick, log)
    rows += suite_runs.suite_rows(quick, log)
    facts["load_after"] = load_average()
    facts["wall_seconds"] = time.perf_counter() - start
    return pd.DataFrame(rows), notes, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--optimizers", nargs="+", metavar="NAME", help="kernels to time (default: all)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite PERF.md and the plots from the folder's perf.csv (and its "
        "make bench compile share from the folder's runs table)",
    )
    args = parser.parse_args(argv)
    names = args.optimizers or list(OPTIMIZERS)
    if args.quick and not args.optimizers:  # one plain rule, Adam, and a skipped line search
        line_search = [name for name, spec in OPTIMIZERS.items() if spec.needs_value_fn]
        names = ["sgd", "adam", *line_search[:1]]
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown:
        parser.error(
            f"unknown optimizer {', '.join(unknown)}; choose from: {', '.join(OPTIMIZERS)}"
        )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    out = Path(args.out)
    if args.report_only:
        frame, notes, facts = read_csv(out / "perf.csv")
    else:
        facts = machine()
        frame, notes, run_facts = measure(args.quick, names, log)
        facts |= run_facts
    out.parent.mkdir(parents=True, exist_ok=True)
    # A bench run replacing the folder meanwhile would drop files written into the old one.
    with locked_when_free(out.resolve(), log):
        # The last make bench's compile share is read again: it is a fact of results/, not
        # of this run's measurements.
        facts["bench_runs_csv"] = compile_time.recorded_bench_share(out)
        write_csv(to_csv_frame(frame, notes, facts), out / "perf.csv")
        report.plots(frame, out)
        write_text(report.markdown(frame, notes, facts), out / "PERF.md")
    log(f"wrote {out / 'perf.csv'}, {out / 'PERF.md'} and plots in {facts['wall_seconds']:.0f}s")
    return 0


def to_csv_frame(frame: pd.DataFrame, notes: list[str], facts: dict) -> pd.DataFrame:
    """The measurements, then the run's facts and notes as `meta` and `note` rows."""
    meta = [{"section": "meta", "case": k, "impl": json.dumps(v)} for k, v in facts.items()]
    meta += [{"section": "note", "case": note} for note in notes]
    return pd.concat([frame, pd.DataFrame(meta)], ignore_index=True)


def read_csv(path: Path) -> tuple[pd.DataFrame, list[str], dict]:
    """Inverse of `to_csv_frame`: (measurements, notes, facts) from a perf.csv."""
    table = pd.read_csv(path)
    meta = table[table.section == "meta"]
    # pandas reads a fact written as JSON `null` as a missing value.
    facts = {
        row.case: json.loads(row.impl) if isinstance(row.impl, str) else None
        for row in meta.itertuples()
    }
    notes = list(table[table.section == "note"].case)
    frame = table[~table.section.isin(["meta", "note"])].reset_index(drop=True)
    frame = frame.astype({"layout": str}).fillna({"layout": ""})
    return frame, notes, facts
