"""Command line: `python -m bench run|plot|list|compare|merge`."""

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from bench import plugins
from bench.analysis.tuning import COSTS


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as a UsageError (one line, no usage dump)."""

    def error(self, message):
        raise UsageError(message)


COST_HELP = "cost axis of tuning, ranking and performance profile"

# Where the whole default suite's results go; a smaller run needs an --out of its own.
DEFAULT_OUT = "results"


# Whether `bench run` looks its sweeps up in the sweep cache and keeps a drawing of the
# same tables (--no-cache: neither).
CACHES = True


def cache_dir() -> Path:
    """Where the caches live, so that a rerun of the same suite pays only for what
    changed: $OPTBENCH_CACHE, else the repository's `.cache` (git-ignored) when the
    project runs from its checkout, else the user's cache folder ($XDG_CACHE_HOME or
    ~/.cache, under optbench); never the working directory. It holds JAX's persistent
    compilation cache (`jax/`, one folder per machine type) and the sweep cache
    (`sweeps/`, `bench.sweep.cache`)."""
    if "OPTBENCH_CACHE" in os.environ:
        return Path(os.environ["OPTBENCH_CACHE"])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "optbench"


def enable_compilation_cache(folder: Path | None = None) -> None:
    """Keeps every compiled program in `folder` (default: `cache_dir()`'s jax/, in a
    folder of the machine type: a program compiled for one CPU's instruction set is not
    loaded on another) for the next run."""
    import jax

    from bench.sweep.cache import machine_type

    folder = cache_dir() / "jax" / machine_type() if folder is None else folder
    jax.config.update("jax_compilation_cache_dir", str(Path(folder).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _names(given: list[str], registry: dict, kind: str) -> list[str]:
    unknown = [name for name in given if name not in registry]
    if unknown:
        raise UsageError(f"unknown {kind} {', '.join(unknown)}; choose from: {', '.join(registry)}")
    return given


def _spaces(given: list[str]) -> dict[str | None, str]:
    """--space [NAME=]FILE values as {NAME: FILE}, the one without a NAME under None."""
    spaces = {}
    for text in given:
        name, equals, path = text.rpartition("=")
        key = name if equals else None
        if key in spaces:
            raise UsageError(f"--space {text}: a second space for {name or 'every optimizer'}")
        spaces[key] = path
    return spaces


def _added(args) -> tuple[list[str], list[str]]:
    """Registers --problem and --optimizer (with their --space); returns their names."""
    spaces = _spaces(args.space)
    try:
        problems = [plugins.add_problem(text) for text in args.problem]
        optimizers = [plugins.add_optimizer(text, spaces) for text in args.optimizer]
    except plugins.PluginError as error:
        raise UsageError(str(error)) from None
    from bench.check import check_problem

    for name in problems:  # the checks that compile nothing, before anything is compiled
        failed = [r for r in check_problem(plugins.problem(name), quick=True) if not r.passed]
        if failed:
            raise UsageError(f"--problem {name} fails `bench check`: {failed[0].line()}")
    unused = {name for name in spaces if name is not None} - set(optimizers)
    if unused:
        raise UsageError(f"--space names no --optimizer: {', '.join(sorted(unused))}")
    return problems, optimizers


def _top(out: Path, added: Sequence[str] = (), count: int = 5) -> None:
    """Says where the results are and the first `count` of their ranking, one line each,
    then the rank of each `added` optimizer ranked below them (the ranking where this
    process can read it: one that wrote the folder)."""
    from bench.combine import ranking

    print(f"results: {out}")
    ranked = ranking(out)
    if ranked is None:  # not written by this process (another process of a multi-host job)
        return
    below = ranked.iloc[count:]
    for row in ranked.head(count).itertuples():
        print(f"{row.overall_rank:3d}. {row.optimizer} (score {row.score:.3f})")
    for row in below[below["optimizer"].isin(added)].itertuples():
        print(f"{row.overall_rank:3d}. {row.optimizer} (score {row.score:.3f}) of {len(ranked)}")


def _source_names(names: list[str]) -> list[str]:
    """Those of `names` that an optional problem source holds (a CUTEst problem)."""
    from problems import sources

    return [name for name in names if sources.source_of(name) is not None]


def _check_executor(args):
    """The `bench.executors.Cluster` of --slurm-config and the --slurm-* options, which
    override the file's values (None without --executor); UsageError for options that do
    not go together, or a --slurm-config that cannot be read."""
    from bench import executors

    slurm = [args.slurm_config, args.slurm_partition, args.slurm_time, args.slurm_parallelism]
    if args.executor is None:
        if args.shards is not None or any(value is not None for value in slurm):
            raise UsageError("--shards and --slurm-* options run through --executor")
        return None
    if args.shards is None or args.shards < 1:
        raise UsageError(f"--executor {args.executor} needs --shards N (N >= 1)")
    if args.shard is not None or args.against is not None:
        raise UsageError(
            f"--executor {args.executor} runs every shard: not with --shard or --against"
        )
    if args.slurm_time is not None and args.slurm_time < 1:
        raise UsageError(f"--slurm-time must be >= 1 minute, got {args.slurm_time}")
    if args.slurm_parallelism is not None and args.slurm_parallelism < 1:
        raise UsageError(f"--slurm-parallelism must be >= 1, got {args.slurm_parallelism}")
    cluster = executors.Cluster()
    if args.slurm_config is not None:
        try:
            cluster = executors.load_cluster(args.slurm_config)
        except ValueError as error:
            raise UsageError(f"--slurm-config {error}") from None
    given = dict(
        partition=args.slurm_partition, minutes=args.slurm_time, parallelism=args.slurm_parallelism
    )
    given = {name: value for name, value in given.items() if value is not None}
    return replace(cluster, **given)


def _check_submitit(args) -> None:
    """UsageError, before anything runs, where --executor is given and submitit is missing."""
    import importlib.util

    from bench import executors

    if args.executor is not None and importlib.util.find_spec("submitit") is None:
        raise UsageError(f"--executor {args.executor} needs submitit: {executors.INSTALL}")


def _submitted(args, suite, cluster) -> int:
    """`bench run --executor`: the shards as jobs (`bench.executors`) of `cluster`, merged
    into --out."""
    from bench import executors
    from bench.results import meta
    from bench.suite import is_full

    out = Path(args.out).resolve()
    if not args.force and not is_full(asdict(suite)) and (meta.read(out) or {}).get("full_suite"):
        raise UsageError(
            f"{out} holds the full suite's results and this run is a smaller one; "
            "choose another --out, or pass --force to replace them"
        )
    try:
        folders = executors.submit(
            enable_compilation_cache,
            _run,
            args,
            suite,
            args.shards,
            args.executor,
            out,
            cluster,
            sys.stderr,
        )
    except executors.ExecutorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return _merged_into(out, folders, allow_partial=False, force=args.force)


def _shard(args):
    """The `bench.shards.Shard` of --shard and --balance-from (None without --shard)."""
    from bench import shards

    if args.shard is None:
        if args.balance_from is not None:
            raise UsageError("--balance-from deals shards: give it with --shard")
        return None
    try:
        index, count = shards.parse(args.shard)
    except shards.ShardError as error:
        raise UsageError(str(error)) from None
    if args.against is not None:
        raise UsageError("--shard runs a share of a spec's pairs: not with --against")
    if args.out is None:
        raise UsageError("--shard needs an --out of its own: each shard writes its own folder")
    if args.balance_from is None:
        return shards.Shard.of(index, count, shards.checkout_results())
    if shards.recorded_seconds(Path(args.balance_from)) is None:
        raise UsageError(f"--balance-from {args.balance_from}: no readable runs.csv.gz there")
    return shards.Shard.of(index, count, Path(args.balance_from))


def _run(args) -> int:
    if args.suite == "all":
        return _run_all(args)
    import jax

    from bench import combine, protocols, spec
    from bench.shards import ShardError
    from bench.sweep import distributed

    cluster = _check_executor(args)
    _check_submitit(args)
    shard = _shard(args)
    distributed.initialize()
    added_problems, added_optimizers = _added(args)
    optimizer_names, problem_names = plugins.origins()
    known_problems = {**problem_names, **dict.fromkeys(_source_names(args.problems or []))}
    problems = _names(args.problems, known_problems, "problem") if args.problems else []
    optimizers = _names(args.optimizers, optimizer_names, "optimizer") if args.optimizers else []
    problems = list(dict.fromkeys([*problems, *added_problems]))
    optimizers = list(dict.fromkeys([*optimizers, *added_optimizers]))
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.grid is not None and not all(0 < lr < float("inf") for lr in args.grid):
        raise UsageError(f"--grid learning rates must be positive and finite, got {args.grid}")
    if args.max_dim is not None and args.max_dim < 1:
        raise UsageError(f"--max-dim must be >= 1, got {args.max_dim}")
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
    changes = dict(
        seeds=args.seeds,
        steps=args.steps,
        grid=args.grid,
        dtype=args.dtype,
        folds=args.cv,
        optimize=args.optimize or None,
        cost=args.cost,
        protocol=args.protocol,
        scale=args.scale,
    )
    base = None
    if args.against is not None:
        if args.problems or args.quick:
            raise UsageError(
                "--against runs on the folder's problems and spec: drop --problems and --quick"
            )
        if args.out is None or Path(args.out).resolve() == Path(args.against).resolve():
            raise UsageError("--against needs an --out of its own: it never changes the folder")
        try:
            folder = combine.read(args.against)
            outside = [p for p in problems if p not in folder.spec.problems]
            if outside:
                raise UsageError(f"--problem {', '.join(outside)}: not a problem of {folder.path}")
            suite = spec.narrowed(folder.spec, **changes)
            suite, base, line = combine.against(
                folder, suite, added_optimizers, args.optimizers or []
            )
        except combine.Incompatible as error:
            raise UsageError(str(error)) from None
        if not suite.optimizers:
            raise UsageError(f"nothing to run: give an --optimizer {folder.path} lacks")
        print(line)
    else:
        try:
            loaded = spec.load(spec.SUITES[args.suite], quick=args.quick, max_dim=args.max_dim)
        except ValueError as error:  # a source that is not installed says how to install it
            raise UsageError(str(error)) from None
        suite = spec.narrowed(loaded, problems=problems, optimizers=optimizers, **changes)
    for name in suite.problems:  # an optional source's problems are built here, once
        try:
            plugins.problem(name)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if suite.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from bench.suite import OutputError, RenderFailed, SpecError, is_full, run_suite
    from bench.sweep.cache import SweepCache

    if args.out is None and not args.force and not is_full(asdict(suite)):
        raise UsageError(
            f"{DEFAULT_OUT}/ is the whole default suite's folder and this run is a smaller "
            "one: give it an --out of its own, or pass --force"
        )
    args.out = args.out or DEFAULT_OUT
    if args.executor is not None:
        return _submitted(args, suite, cluster)
    try:
        run_suite(
            suite,
            Path(args.out),
            args.devices,
            jobs=args.jobs,
            force=args.force,
            base=base,
            shard=shard,
            cache=SweepCache(cache_dir() / "sweeps") if CACHES and not args.no_cache else None,
            processes=True,
        )
    except (OutputError, SpecError, ShardError) as error:
        raise UsageError(str(error)) from None
    except RenderFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"{args.out} is as it was") from None
    _top(Path(args.out), added_optimizers)
    return 0


def _cache(args) -> int:
    from bench.sweep.cache import SweepCache

    cache = SweepCache(cache_dir() / "sweeps")
    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} sweep{'' if removed == 1 else 's'} from {cache.folder}")
        return 0
    info = cache.info()
    count = f"{info['entries']} sweep{'' if info['entries'] == 1 else 's'}"
    print(f"{info['folder']}: {count}, {info['bytes'] / 1e6:.1f} MB")
    return 0


def _merged_into(out: Path, folders, allow_partial: bool, force: bool) -> int:
    """`folders` merged (`combine.merge`) and written into `out`; prints its top five."""
    from bench import combine
    from bench.suite import OutputError, RenderFailed, write_results

    try:
        tables, record, suite = combine.merge(
            [combine.read(folder) for folder in folders], allow_partial
        )
        write_results(out, tables, record, suite, force=force)
    except (combine.Incompatible, OutputError) as error:
        raise UsageError(str(error)) from None
    except RenderFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _top(out)
    return 0


def _joined_into(out: Path, folders) -> int:
    """The joint folder of `folders` written into `out` (`combine.join`); prints its top
    five."""
    from bench import combine
    from bench.results.files import OutputError

    try:
        combine.join([Path(folder) for folder in folders], out)
    except (combine.Incompatible, OutputError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write to {out}: {error.strerror or error}") from None
    _top(out)
    return 0


def _join(args) -> int:
    return _joined_into(Path(args.out), args.folders)


# The members of `bench run --suite all`, each an ordinary suite run into OUT/NAME.
ALL_MEMBERS = ("main", "cutest", "bbob")


def _run_all(args) -> int:
    """`run --suite all`: every suite of ALL_MEMBERS run into OUT/NAME with the same
    options (each pays only for what its sweep cache lacks), then their joint folder
    written in OUT."""
    if args.out is None:
        raise UsageError(
            "--suite all needs an --out: its suites go to OUT/main, OUT/cutest, OUT/bbob"
        )
    narrowing = [
        flag
        for flag, value in (
            ("--problems", args.problems),
            ("--problem", args.problem),
            ("--against", args.against),
            ("--shard", args.shard),
        )
        if value
    ]
    if narrowing:
        raise UsageError(
            f"--suite all runs whole suites: drop {', '.join(narrowing)} (shard each suite "
            "on its own and join the folders: docs/cli.md)"
        )
    out = Path(args.out)
    for name in ALL_MEMBERS:
        print(f"suite {name} -> {out / name}")
        status = _run(argparse.Namespace(**{**vars(args), "suite": name, "out": str(out / name)}))
        if status:
            return status
    return _joined_into(out, [out / name for name in ALL_MEMBERS])


def _merge(args) -> int:
    out = Path(args.out).resolve()
    if out in [Path(folder).resolve() for folder in args.folders]:
        raise UsageError("merge needs an --out of its own: it never changes the folders it reads")
    return _merged_into(out, args.folders, args.allow_partial, args.force)


def _plot(args) -> None:
    from bench.analysis.claims import UnknownReference
    from bench.analysis.tuning import MissingEvalLanes
    from bench.known import known
    from bench.report.render import MissingResults, render
    from bench.results.files import OutputError, locked, remove_drafts
    from bench.results.joint import BadMember
    from bench.results.meta import spec_field
    from bench.results.schema import DamagedTable

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    try:
        with locked(folder.resolve()):
            remove_drafts(folder)
            scale = spec_field(folder, "scale", "cpu")
            for path in render(
                folder, cost=args.cost, known=known(scale), reference=args.reference
            ):
                print(path)
    except (
        MissingResults,
        DamagedTable,
        OutputError,
        MissingEvalLanes,
        UnknownReference,
        BadMember,
    ) as error:
        raise UsageError(str(error)) from None
    except OSError as error:  # the lock file or a drawing cannot be written
        raise UsageError(f"cannot write to {folder}: {error.strerror or error}") from None


def _list(args) -> None:
    from problems import sources

    _added(args)
    optimizer_names, problem_names = plugins.origins()
    try:
        print("problems:")
        for name, origin in problem_names.items():
            print(f"  {name:32s} {plugins.problem(name).description}  [{origin}]")
        for source in list(sources.SOURCES.values())[1:]:
            state = source.missing() or "installed"
            print(
                f"  {source.name}: {len(source.names())} problems, {source.description} ({state})"
            )
        print("optimizers:")
        for name, origin in optimizer_names.items():
            entry = plugins.optimizer(name)
            fixed = ", ".join(f"{k}={v}" for k, v in entry.hparams.items())
            grid = entry.learning_rates
            lrs = f"{len(grid)} lrs {min(grid):.2g}..{max(grid):.2g}" if grid else "no grid"
            factory = plugins.factory_name(entry.factory)
            # What the rule is checked against per step: an optax alias's optax function,
            # else the entry's reference (none for a plug-in without one).
            reference = f"optax 0.2.8 {entry.optax_name}" if entry.optax_name else entry.reference
            checked = f"  [checked against {reference}]" if reference else ""
            print(f"  {name:32s} {factory}({fixed})  [{lrs}]  [{origin}]{checked}")
    except plugins.PluginError as error:
        raise UsageError(str(error)) from None


def _compare(args) -> int:
    from bench.results.compare import UnusableInput, run

    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    try:
        return run(args.base, args.new, args.rtol, args.atol, args.limit)
    except UnusableInput as error:
        raise UsageError(str(error)) from None


def _check(args) -> int:
    from bench.check import check_command

    try:
        return check_command(args.target)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _coco(args) -> int:
    """`bench coco DIR --out OUT`: DIR's BBOB evaluation runs in COCO's data format
    (`bench.coco.export`), one folder per optimizer for cocopp."""
    from bench.coco import export

    try:
        exported = export(args.folder, args.out)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write {args.out}: {error.strerror or error}") from None
    for optimizer, folder in exported.folders.items():
        print(f"{folder}: {exported.runs[optimizer]} runs of {optimizer}")
    if exported.left_out:
        named = "; ".join(f"{name} ({why})" for name, why in exported.left_out.items())
        print(f"left out {len(exported.left_out)} problem(s): {named}")
    print("post-process: python -m cocopp " + " ".join(map(str, exported.folders.values())))
    return 0


def _plugin_arguments(command) -> None:
    command.add_argument(
        "--optimizer",
        action="append",
        default=[],
        metavar="[NAME=]PATH.py:FACTORY",
        help="an optimizer factory of a file or module (module:FACTORY, optax:adam); "
        "ranked as NAME, else the factory's name; repeatable",
    )
    command.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="TOML search space and capabilities of the --optimizer NAME (of every one "
        "without a declaration of its own, without NAME)",
    )
    command.add_argument(
        "--problem",
        action="append",
        default=[],
        metavar="[NAME=]PATH.py:FACTORY",
        help="a Problem, or a factory of one, of a file or module; repeatable",
    )


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="sweep problems x optimizers, write CSV and plots")
    run.add_argument(
        "--problems",
        nargs="+",
        metavar="NAME",
        help="default: all built-in ones, unless --problem is given",
    )
    run.add_argument(
        "--optimizers",
        nargs="+",
        metavar="NAME",
        help="default: all built-in ones, unless --optimizer is given",
    )
    _plugin_arguments(run)
    run.add_argument(
        "--against",
        metavar="DIR",
        help="run only the optimizers added (--optimizer, --optimizers) on DIR's problems "
        "under DIR's spec, and rank them among DIR's results in --out (DIR is not changed)",
    )
    run.add_argument(
        "--suite",
        # bench.spec.SUITES, not imported here, and all (ALL_MEMBERS)
        choices=["main", "models", "bbob", "cutest", "all"],
        default="main",
        help="the suite file: main (bench/suite.toml, the built-in problems), models "
        "(bench/models.toml, the model families), bbob (bench/bbob.toml, COCO's noiseless "
        "functions) or cutest (bench/cutest.toml, CUTEst's unconstrained problems; "
        "pip install -e '.[cutest]'); all: main, cutest and bbob into OUT/NAME, and one "
        "ranking over them in OUT",
    )
    run.add_argument(
        "--max-dim",
        type=int,
        metavar="N",
        help="leave out (and list) the suite's problems of more than N parameters "
        "(default: the suite file's max_dim, 50 for cutest)",
    )
    run.add_argument(
        "--seeds", type=int, help="tuning seeds per trial (default: seeds in bench/suite.toml)"
    )
    run.add_argument("--steps", type=int, help="step budget (default: each problem's own)")
    run.add_argument(
        "--grid", type=float, nargs="+", metavar="LR", help="learning rates for every optimizer"
    )
    run.add_argument(
        "--dtype",
        choices=["float32", "float64", "bfloat16"],
        help="default: the spec's (float32); bfloat16: bfloat16 compute on float32 master weights",
    )
    run.add_argument(
        "--scale",
        choices=["tiny", "cpu", "gpu"],
        help="size preset of the model families (cnn, transformer, autoencoder); "
        "default: the spec's (cpu)",
    )
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
        help="compile with XLA's default options instead of the fast compile: slower to "
        "compile (default: the spec's `optimize`)",
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
    run.add_argument(
        "--shard",
        metavar="i/N",
        help="run shard i of N (0 <= i < N): a share of the spec's pairs, balanced by the "
        "seconds --balance-from records; join the N folders with `bench merge`",
    )
    run.add_argument(
        "--balance-from",
        metavar="DIR",
        help="the results folder whose recorded seconds deal the shards (default: the "
        "checkout's committed results/; the same on every machine)",
    )
    run.add_argument(
        "--executor",
        choices=["submitit", "local"],
        help="run --shards N shards as a job array: submitit submits them to SLURM, local "
        "runs them as processes here; each writes OUT/.shards/i/, merged into --out",
    )
    run.add_argument("--shards", type=int, metavar="N", help="shards of --executor")
    run.add_argument("--slurm-partition", metavar="NAME", help="SLURM partition of the jobs")
    run.add_argument(
        "--slurm-time", type=int, metavar="MIN", help="time limit of each job (default 240)"
    )
    run.add_argument(
        "--slurm-parallelism", type=int, metavar="N", help="jobs of the array run at once"
    )
    run.add_argument(
        "--slurm-config",
        metavar="FILE",
        help="a TOML file whose [slurm] table gives partition, time (minutes), parallelism "
        "and additional sbatch options; the --slurm-* options override its values",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every sweep and draw every figure: neither read nor fill the sweep cache "
        "(`python -m bench cache info`), nor keep the drawing of unchanged tables",
    )
    run.set_defaults(handler=_run)

    cache = commands.add_parser(
        "cache", help="the sweep cache: where it is and what it holds, or empty it"
    )
    cache.add_argument("action", choices=["info", "clear"])
    cache.set_defaults(handler=_cache)

    plot = commands.add_parser("plot", help="redraw tables and plots from a results folder")
    plot.add_argument("folder", metavar="DIR", help="a folder written by `run`")
    plot.add_argument("--cost", choices=COSTS, help=COST_HELP + " (default: DIR's own)")
    plot.add_argument(
        "--reference",
        metavar="NAME",
        help="the optimizer every other is compared with head to head (default: adamw "
        "where DIR ranks it, else DIR's first)",
    )
    plot.set_defaults(handler=_plot)

    listing = commands.add_parser("list", help="list every problem and optimizer with its origin")
    _plugin_arguments(listing)
    listing.set_defaults(handler=_list)

    merge = commands.add_parser(
        "merge",
        help="combine results folders with matching fingerprints (or the shards of a run)",
    )
    merge.add_argument(
        "folders",
        nargs="+",
        metavar="DIR",
        help="two results folders or more, with the same fingerprint",
    )
    merge.add_argument("--out", required=True, help="the folder to write")
    merge.add_argument("--force", action="store_true", help="let it replace the full suite's")
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge shards that lack pairs of their spec; the missing pairs are named as "
        "skipped pairs and in meta.json",
    )
    merge.set_defaults(handler=_merge)

    join = commands.add_parser(
        "join",
        help="one ranking over results folders of different suites (a joint folder that "
        "reads theirs)",
    )
    join.add_argument("folders", nargs="+", metavar="DIR", help="two results folders or more")
    join.add_argument("--out", required=True, help="the joint folder to write")
    join.set_defaults(handler=_join)

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

    checking = commands.add_parser(
        "check", help="check a problem of your own before benchmarking it; exit 1 on a failure"
    )
    checking.add_argument("target", metavar="PATH.py:FACTORY", help="or module:FACTORY")
    checking.set_defaults(handler=_check)

    coco = commands.add_parser(
        "coco", help="write a results folder's BBOB runs in COCO's data format, for cocopp"
    )
    coco.add_argument("folder", metavar="DIR", help="a results folder of `run --suite bbob`")
    coco.add_argument(
        "--out", required=True, help="the folder to write (absent or empty): one per optimizer"
    )
    coco.set_defaults(handler=_coco)
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
