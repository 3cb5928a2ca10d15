"""Mutation testing: does the fast test subset catch single-token bugs?

    python tests/mutation/run.py                # every mutation, writes results/MUTATION.md
    python tests/mutation/run.py --only 3 adam  # mutations whose id or file matches
    python tests/mutation/run.py --check        # validate mutations.toml, run nothing

Each mutation of `mutations.toml` names a file, a piece of its text that must occur
exactly once, its replacement and a one-line description. The repository's files
(tracked and untracked, ignored ones excluded, as they are in the working tree) are
copied to a temporary folder; there, one mutation at a time is applied, the fast
test subset runs with `pytest -x` from the copy's root, and the file is restored.
A mutation is killed when the tests fail. The working tree is never written to,
except for the report.

The copy's imports are checked to resolve inside the copy before anything runs,
and the unmutated copy must pass the subset (else every mutation would look
killed). JAX's persistent compilation cache, private to the run, lets programs a
mutation does not change skip recompilation; it is keyed on the program text, so
a mutated program always compiles afresh.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTATIONS = Path(__file__).with_name("mutations.toml")
REPORT = ROOT / "results" / "MUTATION.md"
PACKAGES = ("optimizers", "problems", "bench")


@dataclass(frozen=True)
class Mutation:
    id: int
    file: str
    original: str
    replacement: str
    description: str
    note: str = ""  # why a survivor survives, when one is expected to


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    killed: bool
    detail: str  # the first failing test, or why the run counts as killed
    seconds: float


def load(path: Path = MUTATIONS) -> tuple[list[str], list[Mutation]]:
    spec = tomllib.loads(path.read_text())
    mutations = [Mutation(id=i, **entry) for i, entry in enumerate(spec["mutation"], 1)]
    return spec["tests"], mutations


def validate(mutations: list[Mutation], tests: list[str], root: Path) -> list[str]:
    """Every problem with the list: a missing file, text found zero or several times, ..."""
    files = [test.split("::")[0] for test in tests]
    errors = [f"test file {f} does not exist" for f in files if not (root / f).is_file()]
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            errors.append(f"#{m.id} {m.file}: no such file")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            errors.append(f"#{m.id} {m.file}: original text found {count} times: {m.original!r}")
        if m.original == m.replacement:
            errors.append(f"#{m.id} {m.file}: replacement equals the original")
    return errors


def copy_repository(destination: Path) -> None:
    """Tracked and untracked (not ignored) files, as they are in the working tree."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in sorted(set(filter(None, listing.split("\0")))):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def environment(copy: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def check_imports_resolve_to(copy: Path, env: dict[str, str]) -> None:
    code = "import sys, {0}; print(*[m.__file__ for m in ({0})], sep='\\n')".format(
        ", ".join(PACKAGES)
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"the copy does not import:\n{result.stderr}")
    for module_file in result.stdout.split():
        if not Path(module_file).resolve().is_relative_to(copy.resolve()):
            sys.exit(f"the copy imports {module_file}, outside {copy}: mutations would not run")


def run_tests(copy: Path, tests: list[str], env: dict[str, str], timeout: float, deselect=()):
    """(passed, detail) for one run of the fast subset in the copy."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    command += [f"--deselect={test}" for test in deselect]
    try:
        result = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if result.returncode == 0:
        return True, ""
    output = result.stdout + result.stderr
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    if failed:
        return False, failed.group(1)
    return False, f"pytest exit status {result.returncode}: {output.strip()[-300:]}"


def failing_tests(copy: Path, tests: list[str], env: dict[str, str]) -> list[str]:
    """The tests of the subset that fail on the unmutated code (all of them are run)."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    if result.returncode not in (0, 1) or any("::" not in test for test in failed):
        sys.exit(f"the unmutated subset does not run:\n{result.stdout[-2000:]}{result.stderr}")
    return failed


def mutate_and_test(m: Mutation, copy: Path, tests, env, timeout, deselect) -> Outcome:
    path = copy / m.file
    original = path.read_text()
    mutated = original.replace(m.original, m.replacement)
    assert mutated != original and original.count(m.original) == 1
    start = time.perf_counter()
    try:
        path.write_text(mutated)
        passed, detail = run_tests(copy, tests, env, timeout, deselect)
    finally:
        path.write_text(original)
    return Outcome(m, not passed, detail, time.perf_counter() - start)


def markdown_cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("\n", " ").replace("`", "'") + "`"


def report(outcomes: list[Outcome], tests: list[str], excluded: list[str], seconds: float) -> str:
    files = sorted({o.mutation.file for o in outcomes})
    killed = sum(o.killed for o in outcomes)
    lines = [
        "# Mutation testing",
        "",
        "Written by `make mutation` (tests/mutation/run.py) from tests/mutation/mutations.toml:",
        "each single-token mutation is applied to a temporary copy of the repository, and",
        f"the fast test subset runs with `pytest -x`: {', '.join(tests)}.",
        "A mutation is killed when that subset fails.",
        "",
        *(
            ["Tests left out because they fail without any mutation:", ""]
            + [f"- `{test}`" for test in excluded]
            + [""]
            if excluded
            else []
        ),
        f"**Kill rate: {killed}/{len(outcomes)}** "
        f"({100 * killed / max(len(outcomes), 1):.0f}%), in {seconds / 60:.1f} minutes.",
        "",
        "| file | mutations | killed | kill rate |",
        "|---|---:|---:|---:|",
    ]
    for file in files:
        mine = [o for o in outcomes if o.mutation.file == file]
        k = sum(o.killed for o in mine)
        lines.append(f"| {file} | {len(mine)} | {k} | {100 * k / len(mine):.0f}% |")
    lines += [
        "",
        "| # | file | mutation | original | replacement | result | caught by | seconds |",
        "|---:|---|---|---|---|---|---|---:|",
    ]
    for o in outcomes:
        m = o.mutation
        result = "killed" if o.killed else "**survived**"
        lines.append(
            f"| {m.id} | {m.file} | {m.description} | {markdown_cell(m.original)} | "
            f"{markdown_cell(m.replacement)} | {result} | {o.detail.replace('|', '/')} | "
            f"{o.seconds:.0f} |"
        )
    survivors = [o for o in outcomes if not o.killed]
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None: every mutation in the list is caught.")
    for o in survivors:
        note = o.mutation.note or "not explained yet: a test is missing"
        lines.append(f"- #{o.mutation.id} {o.mutation.file}, {o.mutation.description}: {note}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="ids or file substrings to run")
    parser.add_argument("--check", action="store_true", help="validate the list, run nothing")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutation")
    parser.add_argument("--jobs", type=int, default=2, help="mutations run at once (one copy each)")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)

    tests, mutations = load()
    errors = validate(mutations, tests, ROOT)
    if errors:
        print("mutations.toml does not match the code:", *errors, sep="\n  ", file=sys.stderr)
        return 2
    if args.check:
        print(f"{len(mutations)} mutations, all applicable")
        return 0
    if args.only:
        mutations = [m for m in mutations if any(s == str(m.id) or s in m.file for s in args.only)]

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        copy, cache = Path(scratch) / "repo0", Path(scratch) / "jax-cache0"
        copy.mkdir()
        copy_repository(copy)
        env = environment(copy, cache)
        check_imports_resolve_to(copy, env)
        # A test that fails without any mutation cannot tell a mutation apart: it is left
        # out of every run, and the report names it.
        excluded = failing_tests(copy, tests, env)
        print(
            f"unmutated subset: {len(excluded)} failing tests left out "
            f"({time.perf_counter() - start:.0f} s)",
            *excluded,
            sep="\n  ",
            flush=True,
        )
        # One copy per worker, each starting from the compilation cache the unmutated
        # run filled; a worker applies one mutation at a time to its own copy.
        workers = [(copy, env)]
        for i in range(1, max(args.jobs, 1)):
            shutil.copytree(copy, Path(scratch) / f"repo{i}")
            shutil.copytree(cache, Path(scratch) / f"jax-cache{i}")
            workers.append(
                (Path(scratch) / f"repo{i}", environment(Path(scratch) / f"repo{i}", cache))
            )
            workers[-1][1]["JAX_COMPILATION_CACHE_DIR"] = str(Path(scratch) / f"jax-cache{i}")
        free = list(range(len(workers)))
        done: list[Outcome] = []
        lock = threading.Lock()

        def run_one(m: Mutation) -> Outcome:
            worker = free.pop()  # list.pop and append are atomic under the GIL
            try:
                workdir, workenv = workers[worker]
                outcome = mutate_and_test(m, workdir, tests, workenv, args.timeout, excluded)
            finally:
                free.append(worker)
            with lock:  # the report so far, so that an interrupted run still leaves one
                done.append(outcome)
                if not args.only:
                    partial = sorted(done, key=lambda o: o.mutation.id)
                    text = report(partial, tests, excluded, time.perf_counter() - start)
                    if len(done) < len(mutations):
                        text += f"\nPartial: {len(done)} of {len(mutations)} mutations run.\n"
                    args.report.parent.mkdir(parents=True, exist_ok=True)
                    args.report.write_text(text)
            verdict = "killed  " if outcome.killed else "SURVIVED"
            print(
                f"#{m.id:<3} {verdict} {outcome.seconds:5.0f} s  {m.file}: {m.description}"
                f"  [{outcome.detail}]",
                flush=True,
            )
            return outcome

        with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
            outcomes = list(pool.map(run_one, mutations))
    seconds = time.perf_counter() - start
    text = report(outcomes, tests, excluded, seconds)
    if args.only:
        print(text)
    else:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"wrote {args.report}")
    killed = sum(o.killed for o in outcomes)
    print(f"kill rate {killed}/{len(outcomes)}")
    unexplained = [o for o in outcomes if not o.killed and not o.mutation.note]
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
