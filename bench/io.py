"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
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


def write_csv(frame, path: str | Path) -> None:
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.10g"))


def write_text(text: str, path: str | Path) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    write_atomic(path, write)
