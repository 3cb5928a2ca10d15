"""Atomic file writes, the lock of a results folder, and the swap that puts a new folder
in place.

A reader sees the old file or the new one, never half of one; one process at a time
writes a results folder.
"""

import contextlib
import fcntl
import gzip
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from bench.results import schema


class OutputError(Exception):
    """The results folder cannot be written: reported in one line, exit status 2."""


class FolderInUse(OutputError):
    """Another process holds the lock of the results folder."""


def write_atomic(path: str | Path, write: Callable[[str], object]) -> None:
    """Calls `write(tmp_path)` on a temporary file beside `path`, then renames it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by the owner only
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# Numbers to 8 significant digits: 5e-9 relative, far inside `bench compare`'s
# tolerances, and a results folder a fifth smaller than at 10.
FLOAT_FORMAT = "%.8g"


def as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as `write_csv` stores it and pandas reads it back (floats to 8 digits):
    what a later reader of the file decides on."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format=FLOAT_FORMAT)))


def write_csv(frame, path: str | Path) -> None:
    """`frame` as CSV at `path`, gzip-compressed where the name ends in .gz: the same bytes
    for the same frame (no time stamp or file name in the gzip header)."""
    if Path(path).suffix != ".gz":
        write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))
        return
    text = frame.to_csv(index=False, float_format=FLOAT_FORMAT).encode()
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(gzip.compress(text, mtime=0)))


def write_text(text: str, path: str | Path) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    write_atomic(path, write)


def is_mount_point(folder: Path) -> bool:
    """Whether `folder` is a mount point (a Docker volume, a bind mount): it cannot be
    renamed, so a new results folder replaces its contents instead (`swap_in`)."""
    return folder.is_dir() and os.path.ismount(folder)


def home_of(folder: Path) -> Path:
    """Where the lock, the staging folder and the old folder of `folder` are made: beside
    it, or inside it where it is a mount point (on its file system, so renames stay
    atomic)."""
    return folder if is_mount_point(folder) else folder.parent


def lock_path(folder: Path) -> Path:
    """The lock file of `folder`: `.NAME.lock` beside it (the folder itself gets replaced),
    inside it where it is a mount point."""
    return home_of(folder) / f".{folder.name}.lock"


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Holds the lock of `folder` for the block; FolderInUse names the process holding it.

    The lock is an flock on `lock_path(folder)`, which holds the holder's process id;
    the kernel releases it when the holder dies, however it dies.
    """
    path = lock_path(folder)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "starting"
            os.close(fd)
            raise FolderInUse(
                f"{folder} is being written by another process ({holder}); "
                "wait for it to finish or choose another folder"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # the previous holder removed this file on release: lock a fresh one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}".encode())
        yield
    finally:
        os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def locked_when_free(folder: Path, say: Callable[[str], None], poll: float = 5.0) -> Iterator[None]:
    """Holds the lock of `folder` for the block, waiting while another process holds it
    (saying so once): for a writer whose results would be lost by giving up, as
    `make perf`'s measurements beside a `bench run` replacing the folder."""
    stack = contextlib.ExitStack()
    waiting = False
    while True:
        try:
            stack.enter_context(locked(folder))
            break
        except FolderInUse as busy:
            if not waiting:
                say(f"{busy}: waiting for it")
                waiting = True
            time.sleep(poll)
    with stack:
        yield


# What a run writes into the results folder; anything else there (other tools' reports)
# is carried over into the new folder untouched.
OWNED = {
    *(schema.file_name(name) for name in schema.COLUMNS),
    *(f"{name}.csv" for name in schema.COLUMNS),  # as a folder written before compression
    "summary.csv",
    "ranking.csv",
    "budget_curves.csv",
    "budget_curves.csv.gz",
    "runtime_ecdf.csv",
    "runtime_ecdf.csv.gz",
    "ert.csv",
    "ert.csv.gz",
    "budget_curves.png",
    "TABLES.md",
    "index.html",
    "meta.json",
    "convergence.png",
    "performance_profile.png",
    "data_profile.png",
    "plots",
}


# A render draws into a hidden draft folder inside the results folder (bench.report.render);
# one a killed render left behind is neither carried into a new folder nor kept.
DRAFT_PREFIX = ".render."


def remove_drafts(folder: Path) -> None:
    """Removes the draft folders killed renders left in `folder`; call it holding the
    folder's lock (`locked`), when no render of it can be running."""
    for draft in Path(folder).glob(f"{DRAFT_PREFIX}*"):
        shutil.rmtree(draft, ignore_errors=True)


def swap_in(staging: Path, out: Path) -> None:
    """Replaces `out` by `staging` with two renames; the old folder is deleted last.

    Entries of `out` that a run does not own are copied into `staging` first, but for
    drafts a killed render left. A mount point cannot be renamed: its owned entries move
    into an old folder inside it and the staging folder's take their place, one rename
    each (`_swap_contents`).
    """
    if is_mount_point(out):
        _swap_contents(staging, out)
        return
    if out.exists():
        for entry in out.iterdir():
            if entry.name.startswith(DRAFT_PREFIX):
                continue
            if entry.name not in OWNED and not (staging / entry.name).exists():
                copy = shutil.copytree if entry.is_dir() else shutil.copy2
                copy(entry, staging / entry.name)
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


def _swap_contents(staging: Path, out: Path) -> None:
    """`swap_in` for a mount point `out` holding `staging`: what a run owns moves aside
    (back again if a rename fails), the staging folder's entries move in, entries the run
    does not own stay where they are."""
    old = Path(tempfile.mkdtemp(dir=out, prefix=f".{out.name}.old."))
    moved = []
    try:
        for entry in list(out.iterdir()):
            if entry.name in OWNED or entry.name.startswith(DRAFT_PREFIX):
                os.replace(entry, old / entry.name)
                moved.append(entry.name)
        for entry in list(staging.iterdir()):
            os.replace(entry, out / entry.name)
    except BaseException:
        for name in moved:
            with contextlib.suppress(OSError):
                os.replace(old / name, out / name)
        raise
    staging.rmdir()
    shutil.rmtree(old, ignore_errors=True)
