"""Command line: `python -m bench run|list|compare`."""

import argparse
import sys
from pathlib import Path

from optimizers import OPTIMIZERS
from problems import PROBLEMS


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


def _names(given: list[str] | None, registry: dict, kind: str) -> list[str]:
    if not given:
        return list(registry)
    unknown = [name for name in given if name not in registry]
    if unknown:
        raise UsageError(f"unknown {kind} {', '.join(unknown)}; choose from: {', '.join(registry)}")
    return given


def _run(args) -> None:
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from bench.suite import run_suite

    problems = _names(args.problems, PROBLEMS, "problem")
    optimizers = _names(args.optimizers, OPTIMIZERS, "optimizer")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    run_suite(problems, optimizers, args.seeds, args.steps, args.dtype, Path(args.out))


def _list(args) -> None:
    del args
    print("problems:")
    for name, problem in PROBLEMS.items():
        print(f"  {name:32s} {problem.description}")
    print("optimizers:")
    for name, spec in OPTIMIZERS.items():
        fixed = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
        print(f"  {name:32s} {spec.factory.__name__}({fixed})")


def _compare(args) -> int:
    from bench.compare import UnusableInput, run

    try:
        return run(args.base, args.new, args.rtol, args.atol, args.limit)
    except UnusableInput as error:
        raise UsageError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="sweep problems x optimizers, write CSV and plots")
    run.add_argument("--problems", nargs="+", metavar="NAME", help="default: all")
    run.add_argument("--optimizers", nargs="+", metavar="NAME", help="default: all")
    run.add_argument("--seeds", type=int, default=5, help="seeds per grid point (default 5)")
    run.add_argument("--steps", type=int, help="step budget (default: each problem's own)")
    run.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    run.add_argument("--out", default="results", help="output folder (default results/)")
    run.set_defaults(handler=_run)

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
    args = parser().parse_args(argv)
    try:
        status = args.handler(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return status or 0
