"""The results folder survives concurrent runs, links, unwritable places, damaged files,
failed figures and interruptions; the command line answers bad input in one line.

Filesystem and concurrency cases run `python -m bench` as real processes on real files.
Every run is tiny: one or two 2-D problems, one optimizer, a few steps.
"""

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from bench import suite
from bench.analysis import tuning
from bench.cli import main
from bench.known import known
from bench.report import plots, render
from bench.results import files as bench_io
from bench.spec import SuiteSpec, load, narrowed

# Many cases that together take minutes: make test-slow runs them, make test does not.
pytestmark = pytest.mark.slow

BENCH = [sys.executable, "-m", "bench"]
# One pair, one lane, a few steps: a run that takes a compile and little else.
TINY = ["--problems", "rosenbrock_2d", "--optimizers", "sgd", "--seeds", "1", "--steps", "5"]
RUN = ["run", *TINY, "--grid", "0.001"]
SPEC = SuiteSpec(
    problems=("rosenbrock_2d", "beale"),
    optimizers=("sgd",),
    seeds=2,
    grid={"sgd": (1e-3, 1e-2)},
    steps={"rosenbrock_2d": 20, "beale": 20},
)


def bench(*argv, **kwargs) -> subprocess.CompletedProcess:
    argv = [str(a) for a in argv]
    return subprocess.run(
        [*BENCH, *argv], capture_output=True, text=True, timeout=600, check=False, **kwargs
    )


def one_error_line(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def last_error_line(stderr: str, *words: str) -> None:
    """The error line that ends a run which got as far as its progress bar."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and lines[-1].startswith("error: "), stderr
    assert lines[0].startswith("[#") and all(word in lines[-1] for word in words), stderr


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A real results folder: two problems, sgd, two learning rates, two seeds."""
    out = tmp_path_factory.mktemp("results") / "out"
    suite.run_suite(SPEC, out, progress=io.StringIO())
    return out


@pytest.fixture
def copy(results, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(results, out)
    return out


# 1. Concurrent runs: a lock, and staging folders of names of their own.


def test_a_run_into_a_folder_another_process_writes_exits_2_naming_it(copy):
    before = snapshot(copy)
    with bench_io.locked(copy.resolve()):  # this test's process holds the lock
        done = bench(*RUN, "--out", copy)
    assert done.returncode == 2
    one_error_line(done.stderr, str(copy), f"process {os.getpid()}")
    assert "1/1" not in done.stderr  # refused before sweeping anything
    assert snapshot(copy) == before
    assert siblings(copy) == ["out"]  # the lock file went with the lock


def test_two_runs_started_together_leave_one_complete_folder(tmp_path):
    out = tmp_path / "out"
    runs = [
        subprocess.Popen(
            [*BENCH, *RUN[:-1], lr, "--out", str(out)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        for lr in ("0.001", "0.002")
    ]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    statuses = [run.returncode for run in runs]
    assert 0 in statuses and set(statuses) <= {0, 2}, errors
    for status, stderr in zip(statuses, errors, strict=True):
        if status == 2:
            one_error_line(stderr, "is being written by another process")
    names = {p.name for p in out.iterdir()}
    assert {"runs.csv.gz", "curves.csv.gz", "summary.csv", "TABLES.md", "meta.json"} <= names
    # The tables and meta.json come from one and the same run.
    lr = json.loads((out / "meta.json").read_text())["spec"]["grid"]["sgd"]
    assert set(pd.read_csv(out / "runs.csv.gz").learning_rate) == set(lr)
    assert pd.read_csv(out / "summary.csv").learning_rate.tolist() == lr
    assert siblings(out) == ["out"]


def test_a_lock_and_staging_left_by_a_killed_run_do_not_get_in_the_way(copy):
    # A killed holder's flock is gone with it; only its files stay behind.
    bench_io.lock_path(copy).write_text("process 999999999")
    (copy.parent / ".out.partial.abcd1234").mkdir()
    assert main([*RUN, "--out", str(copy)]) == 0
    assert set(pd.read_csv(copy / "runs.csv.gz").problem) == {"rosenbrock_2d"}
    assert siblings(copy) == ["out"]


def test_a_draft_left_by_a_killed_plot_is_removed_and_never_carried_over(copy):
    leftover = copy / f"{bench_io.DRAFT_PREFIX}abcd1234"
    leftover.mkdir()
    (leftover / "TABLES.md").write_text("half drawn")
    assert main(["plot", str(copy)]) == 0
    assert not leftover.exists()
    leftover.mkdir()
    assert main([*RUN, "--out", str(copy)]) == 0
    assert not [p.name for p in copy.iterdir() if p.name.startswith(".render")]


def test_git_ignores_what_a_killed_run_or_plot_leaves(tmp_path):
    """The names the code gives its staging, old and draft folders, as .gitignore sees
    them: `git add -A` after a killed `make bench` must not commit them."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = Path(__file__).resolve().parent.parent
    left = [
        f"results/{bench_io.DRAFT_PREFIX}abcd1234/TABLES.md",
        ".results.partial.abcd1234/runs.csv.gz",
        ".results.old.abcd1234/runs.csv.gz",
        ".results.lock",
    ]
    kept = ["results/TABLES.md", "results/plots/convergence_beale.png"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(left + kept),
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    ).stdout.split()
    assert ignored == left


def test_a_writer_that_must_not_give_up_waits_for_the_lock(tmp_path):
    """`make perf` writes into results/ only while no bench run holds it (a run replacing
    the folder would drop its files), waiting for the lock instead of failing."""
    import threading

    folder, said, entered = tmp_path / "results", [], threading.Event()

    def write():
        with bench_io.locked_when_free(folder, said.append, poll=0.01):
            entered.set()

    with bench_io.locked(folder):
        writer = threading.Thread(target=write)
        writer.start()
        assert not entered.wait(0.3)  # held off while the lock is held
    writer.join(5)
    assert entered.is_set()
    assert len(said) == 1 and "being written by another process" in said[0]


# 2. A figure that cannot be drawn costs only itself.


@pytest.mark.parametrize("grid", [["0.01"], ["0.01", "0.01"]])
def test_a_sweep_whose_lanes_diverge_keeps_its_tables(tmp_path, capsys, grid):
    out = tmp_path / "out"
    argv = ["run", "--problems", "rosenbrock_2d", "--optimizers", "sgd", "--seeds", "1"]
    assert main([*argv, "--steps", "20", "--grid", *grid, "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv.gz")
    assert set(runs.learning_rate) == {0.01} and runs.diverged.any()
    assert (out / "TABLES.md").exists() and (out / "summary.csv").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith(("[#", "skipped plots/")) for line in err.splitlines()), err


def test_a_figure_that_cannot_be_drawn_is_skipped_with_one_line(tmp_path, monkeypatch, capsys):
    def undrawable(*args, **kwargs):
        raise ValueError("Data cannot be log-scaled because all values are <= 0.\nmore")

    monkeypatch.setattr(plots, "sensitivity", undrawable)
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert skipped == [
        "skipped plots/sensitivity_rosenbrock_2d.png: ValueError: "
        "Data cannot be log-scaled because all values are <= 0."
    ]
    assert not (out / "plots" / "sensitivity_rosenbrock_2d.png").exists()
    for name in ["runs.csv.gz", "TABLES.md", "convergence.png", "plots/paths_rosenbrock_2d.png"]:
        assert (out / name).exists(), name


def test_a_failure_to_summarize_still_leaves_the_raw_tables(tmp_path, monkeypatch, capsys):
    def broken(runs, cost):
        raise RuntimeError("no summary today")

    monkeypatch.setattr(tuning, "summarize", broken)
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 1
    last_error_line(capsys.readouterr().err, "raw tables", "RuntimeError: no summary today")
    assert set(pd.read_csv(out / "runs.csv.gz").learning_rate) == {0.001}
    assert json.loads((out / "meta.json").read_text())["pairs"] == 1
    assert not (out / "summary.csv").exists()
    assert siblings(out) == ["out"]


# 3. A symbolic link as --out is written through.


def test_a_symlinked_out_is_written_through_run_after_run(tmp_path):
    (tmp_path / "scratch" / "res").mkdir(parents=True)
    os.symlink("scratch/res", tmp_path / "res_link")
    for grid in ("0.001", "0.002"):
        done = bench(*RUN[:-1], grid, "--out", tmp_path / "res_link")
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "res_link").is_symlink()
        runs = pd.read_csv(tmp_path / "scratch" / "res" / "runs.csv.gz")
        assert set(runs.learning_rate) == {float(grid)}
    assert siblings(tmp_path / "res_link") == ["res_link", "scratch"]
    assert siblings(tmp_path / "scratch" / "res") == ["res"]


# 4. An --out that cannot be written is refused before anything is compiled.


@contextlib.contextmanager
def tmpfs_mount(folder: Path, options: str = "size=16m"):
    """A tmpfs mounted at `folder`, as a Docker volume is (skips when this process may not
    mount)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def read_only_mount(folder: Path):
    return tmpfs_mount(folder, "ro,size=1m")


@pytest.mark.parametrize(
    "case", ["read-only mount", "read-only mount as out", "parent is a file", "out is a file"]
)
def test_an_out_that_cannot_be_written_exits_2_before_sweeping(tmp_path, case):
    (tmp_path / "file").write_text("mine")
    with contextlib.ExitStack() as stack:
        if case == "read-only mount":
            out = stack.enter_context(read_only_mount(tmp_path / "ro")) / "results"
            words = ["cannot write to", "Read-only file system"]
        elif case == "read-only mount as out":
            out = stack.enter_context(read_only_mount(tmp_path / "ro"))
            words = ["cannot write to", "mount point"]
        elif case == "parent is a file":
            out = tmp_path / "file" / "results"
            words = ["cannot write to", f"{tmp_path / 'file'} is a file"]
        else:
            out = tmp_path / "file"
            words = ["is a file, not a folder"]
        done = bench(*RUN, "--out", out)
    assert done.returncode == 2
    one_error_line(done.stderr, str(out), *words)
    assert "1/1" not in done.stderr
    assert (tmp_path / "file").read_text() == "mine"


def test_a_mount_point_as_out_gets_the_results_in_it_run_after_run(tmp_path):
    # A mount point cannot be renamed: its contents are swapped, not the folder.
    with tmpfs_mount(tmp_path / "volume") as out:
        for grid in ("0.001", "0.002"):
            done = bench(*RUN[:-1], grid, "--out", out)
            assert done.returncode == 0, done.stderr
            runs = pd.read_csv(out / "runs.csv.gz")
            assert set(runs.learning_rate) == {float(grid)}
            (out / "notes.txt").write_text("mine")  # what the run does not own stays
        assert (out / "notes.txt").read_text() == "mine"
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
        assert {"TABLES.md", "meta.json", "summary.csv"} <= {p.name for p in out.iterdir()}
    assert siblings(tmp_path / "volume") == ["volume"]


def test_a_compressed_table_is_the_same_bytes_each_time_and_reads_back(tmp_path):
    frame = pd.DataFrame({"problem": ["a", "b"], "final_loss": [0.1234567891, 2.0]})
    first, second = tmp_path / "one" / "runs.csv.gz", tmp_path / "two" / "runs.csv.gz"
    bench_io.write_csv(frame, first)
    bench_io.write_csv(frame, second)
    assert first.read_bytes() == second.read_bytes()  # no time stamp, no file name
    assert (
        gzip.decompress(first.read_bytes())
        == frame.to_csv(index=False, float_format=bench_io.FLOAT_FORMAT).encode()
    )


def test_a_folder_written_before_compression_plots_and_compares(results, copy):
    for compressed in copy.glob("*.csv.gz"):
        compressed.with_suffix("").write_bytes(gzip.decompress(compressed.read_bytes()))
        compressed.unlink()
    assert main(["plot", str(copy)]) == 0
    assert not (copy / "runs.csv.gz").exists()
    assert main(["compare", str(results), str(copy)]) == 0


# 5. `bench plot` checks the raw tables before it writes anything.


def _cut_mid_row(data: bytes) -> bytes:
    return data[: data.rindex(b",", 0, len(data) - 1)]


def _garbage_row(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join([*lines[:3], b"rosenbrock_2d,sgd,0,fast,zero\n", *lines[3:]])


def _binary(data: bytes) -> bytes:
    return bytes(range(256)) * 8


def _without_diverged(data: bytes) -> bytes:
    frame = pd.read_csv(io.BytesIO(data)).drop(columns="diverged")
    return frame.to_csv(index=False).encode()


def _inside_gzip(damage):
    """`damage` applied to the CSV text inside a gzip file, recompressed."""
    return lambda data: gzip.compress(damage(gzip.decompress(data)))


def _gzip_cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


# Damage done to runs.csv.gz, and the words of the one line that reports it.
DAMAGES = pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_inside_gzip(_cut_mid_row), ["ends in the middle of a row"]),
        (_inside_gzip(_garbage_row), ["line 4", "learning_rate is 'fast', not a finite number"]),
        (_inside_gzip(_binary), ["not a CSV file"]),
        (_inside_gzip(_without_diverged), ["lacks the column(s) diverged"]),
        (_gzip_cut_short, ["not a readable gzip file"]),
        (_binary, ["not a readable gzip file"]),
    ],
    ids=["truncated", "garbage row", "binary", "missing column", "gzip cut short", "not gzip"],
)


@DAMAGES
def test_plot_of_a_damaged_runs_csv_exits_2_and_changes_nothing(copy, damage, words):
    runs = copy / "runs.csv.gz"
    runs.write_bytes(damage(runs.read_bytes()))
    before = snapshot(copy)
    done = bench("plot", copy)
    assert done.returncode == 2
    one_error_line(done.stderr, str(runs), *words)
    assert snapshot(copy) == before


def test_plot_writes_nothing_unless_everything_is_drawn(copy, monkeypatch):
    (copy / "TABLES.md").write_text("old tables")
    (copy / "summary.csv").unlink()
    before = snapshot(copy)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "paths", interrupted)  # among the last figures drawn
    with pytest.raises(KeyboardInterrupt):
        render.render(copy, known=known())
    assert snapshot(copy) == before
    assert not [p for p in copy.iterdir() if p.name.startswith(".")]


# 6. A smaller run does not replace the full suite's results unless forced.


def test_a_smaller_run_does_not_replace_the_full_suite_unless_forced(copy, capsys):
    record = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**record, "full_suite": True}))
    before = snapshot(copy)
    for argv in [RUN, ["run", "--quick"]]:
        assert main([*argv, "--out", str(copy)]) == 2
        one_error_line(capsys.readouterr().err, str(copy), "full suite", "--force")
        assert snapshot(copy) == before
    assert main([*RUN, "--force", "--out", str(copy)]) == 0
    assert set(pd.read_csv(copy / "runs.csv.gz").problem) == {"rosenbrock_2d"}


def test_the_readme_quick_command_does_not_touch_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # where the default --out, results/, would be
    assert main(["run", "--quick"]) == 2
    one_error_line(capsys.readouterr().err, "results/", "--out", "--force")
    assert list(tmp_path.iterdir()) == []


def test_only_the_default_suite_counts_as_full():
    spec = load()
    assert suite.is_full(asdict(spec))
    assert suite.is_full(asdict(narrowed(spec, optimize=True)))  # compile options only
    assert not suite.is_full(asdict(load(quick=True)))
    assert not suite.is_full(asdict(narrowed(spec, problems=["rosenbrock_2d"])))
    assert not suite.is_full(asdict(narrowed(spec, dtype="float64")))


# 7. The rest of the command line: one line and exit status 2 for bad input.


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["--problems", "logistic_breast_cancer", "--optimizers", "sgd", "--cv", "600"],
            ["--cv 600", "logistic_breast_cancer (569)"],
        ),
        (["--problems", "rosenbrock_2d", "--optimizers", "sgd", "--cv", "3"], ["data-set"]),
    ],
)
def test_cross_validation_that_cannot_run_exits_2(tmp_path, capsys, argv, words):
    assert main(["run", *argv, "--out", str(tmp_path / "out")]) == 2
    one_error_line(capsys.readouterr().err, *words)
    assert not (tmp_path / "out").exists()


def test_ctrl_c_prints_one_line_and_leaves_out_as_it_was(copy):
    before = snapshot(copy)
    # A pytest-xdist worker ignores SIGINT, and an ignored signal stays ignored in the
    # processes it starts, where Python then never raises KeyboardInterrupt. A terminal's
    # Ctrl-C reaches a process whose SIGINT is not ignored: start it so.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = subprocess.Popen(
            [*BENCH, "run", "--problems", "rosenbrock_2d", "beale", "himmelblau"]
            + ["--optimizers", "sgd", "adam", "lion", "--seeds", "1", "--steps", "9"]
            + ["--jobs", "1", "--out", str(copy)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    first = run.stderr.readline()
    assert "1/9" in first, first
    run.send_signal(signal.SIGINT)
    rest = run.communicate(timeout=600)[1]
    assert run.returncode == 130, rest
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == f"interrupted; {copy} is as it was"
    assert snapshot(copy) == before
    assert siblings(copy) == ["out"]


def test_compare_into_a_closed_pipe_exits_quietly(results, copy):
    runs = pd.read_csv(copy / "runs.csv.gz")
    runs["final_loss"] *= 2
    runs.to_csv(copy / "runs.csv.gz", index=False)
    compare = subprocess.Popen(
        [*BENCH, "compare", str(results), str(copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    compare.stdout.close()  # as `| head` does once it has its lines
    with compare.stderr:
        stderr = compare.stderr.read().decode()
    assert compare.wait(timeout=600) == 141
    assert stderr == ""


def test_compare_of_a_binary_runs_csv_exits_2_with_one_line(results, copy):
    (copy / "runs.csv.gz").write_bytes(_binary(b""))
    done = bench("compare", results, copy)
    assert done.returncode == 2
    one_error_line(done.stderr, str(copy / "runs.csv.gz"), "not a readable gzip file")


@DAMAGES
def test_compare_of_a_damaged_runs_csv_says_what_plot_says(results, copy, capsys, damage, words):
    runs = copy / "runs.csv.gz"
    runs.write_bytes(damage(runs.read_bytes()))
    assert main(["compare", str(results), str(copy)]) == 2
    captured = capsys.readouterr()
    if "lacks the column(s) diverged" in words:  # a difference between the two folders
        words = ["metric columns differ", "only in BASE ['diverged']"]
    else:
        words = [str(runs), *words]
    one_error_line(captured.err, *words)
    assert captured.out == ""


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--rtol", "misspelt_metric=1"], ["misspelt_metric", "final_loss"]),
        (["--atol", "final_los=1"], ["final_los"]),
        (["--limit", "-1"], ["--limit", ">= 0"]),
    ],
)
def test_compare_refuses_unknown_metrics_and_negative_limits(results, capsys, options, words):
    assert main(["compare", str(results), str(results), *options]) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, *words)
    assert captured.out == ""


def test_git_dirty_counts_the_code_not_the_results_or_the_prose(tmp_path):
    """meta.json's git_dirty: a rewritten results/ folder, docs/ and Markdown pages leave
    the tree clean; a changed source file does not (meta.NOT_CODE, with real git)."""
    from bench.results import meta

    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path / "bench",
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    for name in ("results/runs.csv", "docs/page.md", "README.md", "bench/code.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    git("init", "-q", str(tmp_path))
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    status = ("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *meta.NOT_CODE)
    for name in ("results/runs.csv", "docs/page.md", "README.md"):
        (tmp_path / name).write_text("two\n")
    assert git(*status) == ""
    (tmp_path / "bench/code.py").write_text("two\n")
    assert "bench/code.py" in git(*status)
