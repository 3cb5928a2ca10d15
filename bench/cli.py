"""Command line: `python -m bench run|plot|list|compare`."""

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from bench.tuning import COSTS
from optimizers import OPTIMIZERS
from problems import PROBLEMS


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as a UsageError (one line, no usage dump)."""

    def error(self, message):
        raise UsageError(message)


COST_HELP = "cost axis of tuning, ranking and performance profile"

# Where the whole default suite's results go; a smaller run needs an --out of its own.
DEFAULT_OUT = "results"

# JAX's persistent compilation cache: a rerun of the same suite loads every program.
CACHE_DIR = Path(".cache") / "jax"


def enable_compilation_cache(folder: Path = CACHE_DIR) -> None:
    """Keeps every compiled program in `folder` (git-ignored) for the next run."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(Path(folder).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _names(given: list[str] | None, registry: dict, kind: str) -> list[str]:
    if not given:
        return list(registry)
    unknown = [name for name in given if name not in registry]
    if unknown:
        raise UsageError(f"unknown {kind} {', '.join(unknown)}; choose from: {', '.join(registry)}")
    return given


def _run(args) -> int:
    import jax

    from bench import distributed, protocols, spec

    distributed.initialize()
    problems = _names(args.problems, PROBLEMS, "problem")
    optimizers = _names(args.optimizers, OPTIMIZERS, "optimizer")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.grid is not None and not all(0 < lr < float("inf") for lr in args.grid):
        raise UsageError(f"--grid learning rates must be positive and finite, got {args.grid}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.cv is not None and args.cv < 2:
        raise UsageError(f"--cv must be >= 2 folds, got {args.cv}")
    if args.devices is not None and not 1 <= args.devices <= jax.device_count():
        raise UsageError(
            f"--devices must be between 1 and {jax.device_count()}, got {args.devices}"
        )
    if args.protocol is not None:
        try:
            protocols.parse(args.protocol)
        except ValueError as error:
            raise UsageError(f"--protocol: {error}") from None
    suite = spec.narrowed(
        spec.load(quick=args.quick),
        problems=args.problems and problems,
        optimizers=args.optimizers and optimizers,
        seeds=args.seeds,
        steps=args.steps,
        grid=args.grid,
        dtype=args.dtype,
        folds=args.cv,
        optimize=args.optimize or None,
        cost=args.cost,
        protocol=args.protocol,
    )
    if suite.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from bench.suite import OutputError, RenderFailed, SpecError, is_full, run_suite

    if args.out is None and not args.force and not is_full(asdict(suite)):
        raise UsageError(
            f"{DEFAULT_OUT}/ is the whole default suite's folder and this run is a smaller "
            "one: give it an --out of its own, or pass --force"
        )
    args.out = args.out or DEFAULT_OUT
    try:
        run_suite(suite, Path(args.out), args.devices, jobs=args.jobs, force=args.force)
    except (OutputError, SpecError) as error:
        raise UsageError(str(error)) from None
    except RenderFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"{args.out} is as it was") from None
    return 0


def _plot(args) -> None:
    from bench.io import OutputError, locked
    from bench.report import MissingResults, render
    from bench.schema import DamagedTable
    from bench.tuning import MissingEvalLanes

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    try:
        with locked(folder.resolve()):
            for path in render(folder, cost=args.cost):
                print(path)
    except (MissingResults, DamagedTable, OutputError, MissingEvalLanes) as error:
        raise UsageError(str(error)) from None
    except OSError as error:  # the lock file or a drawing cannot be written
        raise UsageError(f"cannot write to {folder}: {error.strerror or error}") from None


def _list(args) -> None:
    del args
    print("problems:")
    for name, problem in PROBLEMS.items():
        print(f"  {name:32s} {problem.description}")
    print("optimizers:")
    for name, spec in OPTIMIZERS.items():
        fixed = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
        grid = spec.learning_rates
        lrs = f"{len(grid)} lrs {min(grid):.2g}..{max(grid):.2g}" if grid else "no grid"
        print(f"  {name:32s} {spec.factory.__name__}({fixed})  [{lrs}]")


def _compare(args) -> int:
    from bench.compare import UnusableInput, run

    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    try:
        return run(args.base, args.new, args.rtol, args.atol, args.limit)
    except UnusableInput as error:
        raise UsageError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="sweep problems x optimizers, write CSV and plots")
    run.add_argument("--problems", nargs="+", metavar="NAME", help="default: all")
    run.add_argument("--optimizers", nargs="+", metavar="NAME", help="default: all")
    run.add_argument(
        "--seeds", type=int, help="tuning seeds per trial (default: seeds in bench/suite.toml)"
    )
    run.add_argument("--steps", type=int, help="step budget (default: each problem's own)")
    run.add_argument(
        "--grid", type=float, nargs="+", metavar="LR", help="learning rates for every optimizer"
    )
    run.add_argument("--dtype", choices=["float32", "float64"], help="default: float32")
    run.add_argument("--cost", choices=COSTS, help=COST_HELP + " (default: the spec's)")
    run.add_argument(
        "--protocol",
        metavar="P",
        help="tuning protocol: grid (the learning-rate grid), random:N (N quasi-random points "
        "of every tuned hyperparameter), algoperf (3 studies x 5 random trials) or defaults "
        "(no tuning); default: the spec's",
    )
    run.add_argument(
        "--quick", action="store_true", help="small smoke suite: few problems, seeds, steps"
    )
    run.add_argument("--jobs", type=int, help="pairs compiled at once (default: CPU cores)")
    run.add_argument(
        "--cv", type=int, metavar="K", help="tune data-set problems on K-fold held-out loss"
    )
    run.add_argument(
        "--optimize",
        action="store_true",
        help="compile at XLA's default optimisation level: slower to compile, 3-7x faster to run",
    )
    run.add_argument(
        "--out", help=f"output folder (default {DEFAULT_OUT}/, for the whole default suite)"
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="let a smaller run replace the whole default suite's results",
    )
    run.add_argument(
        "--devices", type=int, help="shard lanes over this many devices (default: all)"
    )
    run.set_defaults(handler=_run)

    plot = commands.add_parser("plot", help="redraw tables and plots from a results folder")
    plot.add_argument("folder", metavar="DIR", help="a folder written by `run`")
    plot.add_argument("--cost", choices=COSTS, help=COST_HELP + " (default: DIR's own)")
    plot.set_defaults(handler=_plot)

    listing = commands.add_parser("list", help="list the registered problems and optimizers")
    listing.set_defaults(handler=_list)

    compare = commands.add_parser(
        "compare", help="compare two results folders; exit 1 when a metric moved"
    )
    compare.add_argument("base", metavar="BASE", help="results folder of reference")
    compare.add_argument("new", metavar="NEW", help="results folder to check")
    compare.add_argument(
        "--rtol", action="append", default=[], metavar="[METRIC=]X", help="relative tolerance"
    )
    compare.add_argument(
        "--atol", action="append", default=[], metavar="[METRIC=]X", help="absolute tolerance"
    )
    compare.add_argument("--limit", type=int, default=50, help="moved values shown (default 50)")
    compare.set_defaults(handler=_compare)
    return top


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        status = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print("interrupted" + (f"; {error}" if error.args else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush
        return 141
    return status or 0
