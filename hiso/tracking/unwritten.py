"""A run's output that could not be written (a full disk, a read-only or vanished run directory,
a file it may not write): one error naming the file and what was being written, and the exit code
a run stopped by it ends with."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

# EX_IOERR of sysexits.h: the run stopped because one of its outputs could not be written
EXIT_CODE = 74


class OutputError(Exception):
    """Writing `what` to `path` failed with `error` (an OSError). `unwritten`: the run's files
    left incomplete or missing by then, relative to its directory (the run's Tracker fills it)."""

    def __init__(self, what: str, path: Path, error: OSError) -> None:
        self.what = what
        self.path = Path(path)
        self.error = error
        self.unwritten: list[str] = []
        code = errno.errorcode.get(error.errno or 0, "")
        reason = error.strerror or str(error)
        if error.errno == errno.ENOENT and not self.path.parent.is_dir():
            reason = f"its directory {self.path.parent} no longer exists"
        super().__init__(
            f"cannot write {what} to {self.path}: {reason}" + (f" ({code})" if code else "")
        )


@contextmanager
def writing(what: str, path: Path) -> Iterator[None]:
    """Within the block, an OSError becomes an OutputError naming `what` and `path`."""
    try:
        yield
    except OSError as error:
        raise OutputError(what, path, error) from None


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` to the file at `path` whole or not at all: after a failed write (a full disk)
    what was written of it is cut off again, so the file never ends in a torn line. The file is
    opened for each append: a run directory removed meanwhile fails here, not silently later."""
    with open(path, "ab", buffering=0) as file:
        _append(file, data)


def _append(file: BinaryIO, data: bytes) -> None:
    start = file.seek(0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            view = view[file.write(view) or 0 :]
    except OSError:
        with suppress(OSError):  # else the file keeps a torn last line, which read_jsonl drops
            os.ftruncate(file.fileno(), start)
        raise
