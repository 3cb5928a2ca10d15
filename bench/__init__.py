"""The benchmark engine: sweep runner, tuning, tables, plots and the command line."""

import os

# OpenBLAS (under numpy's and jaxlib's linear algebra: SVD, eigh, QR, solves) threads each
# call over every core and spin-waits between calls: beside XLA's own threads, and two
# pairs compiled and run at once, a batch of ten 100 x 100 SVDs took 930 ms where one
# thread takes 8 ms. Read when OpenBLAS loads, so before numpy is imported; a value the
# user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench.sweep.runner import SweepResult, run_sweep  # noqa: E402

__all__ = ["SweepResult", "run_sweep"]
