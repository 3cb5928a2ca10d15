"""The benchmark engine: sweep runner, tuning, tables, plots and the command line."""

from bench.runner import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]
