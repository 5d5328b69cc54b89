"""One writer per run directory: a lock file that names its holder.

A run (fresh, resumed, or a sweep's job) holds an exclusive `flock` on `DIR/.hiso-run.lock`
while it writes in DIR; the file says which process holds it (pid and host). The kernel drops the
lock when its holder dies, SIGKILL included, so a lock file left by a dead process is simply taken
over (with a notice naming it); a live holder makes a second writer refuse to start, naming the
holder's pid (exit code 2, as an input error). The holder removes the file when it is done.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import Any

from hiso.schema import SetupError

LOCK_FILE = ".hiso-run.lock"


def run_directory(cfg: Any, output_dir: Path) -> Path:
    """The directory a job writes in: DIR for `resume=DIR`, else Hydra's `output_dir`."""
    if cfg.resume in (None, "auto"):
        return Path(output_dir)
    return Path(cfg.resume).expanduser().absolute()


class RunBusy(SetupError):
    """Another live process holds the run directory's lock."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(
            f"{directory} is in use by another hiso-run ({holder or 'holder unknown'}; lock file "
            f"{directory / LOCK_FILE}): wait for it to end, or write to another directory"
        )


def _holder(text: str) -> str:
    """`pid N on HOST` from a lock file's text (empty when the file says nothing)."""
    pid, _, host = text.strip().partition(" ")
    return f"pid {pid} on {host}" if pid else ""


def check_free(directory: Path) -> None:
    """Raise RunBusy when a live process holds `directory`'s lock (takes nothing)."""
    path = Path(directory).absolute() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or none readable): nobody to wait for
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunBusy(path.parent, _holder(os.pread(fd, 256, 0).decode(errors="replace"))) from None
    finally:
        os.close(fd)


class RunLock:
    """The exclusive lock of one run directory, from `acquire()` to `release()`."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory).absolute() / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise RunBusy; a lock file of a dead holder is taken over."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 256, 0).decode(errors="replace")
                os.close(fd)
                raise RunBusy(self.path.parent, _holder(text)) from None
            try:  # the holder before us may have removed the file between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _holder(os.pread(fd, 256, 0).decode(errors="replace"))
        if previous:
            print(
                f"hiso-run: taking over {self.path} from {previous}, which no longer holds it",
                file=sys.stderr,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file, then drop the lock (no-op when not held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
