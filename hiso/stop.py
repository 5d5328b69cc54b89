"""Stopping a run cleanly on SIGINT (Ctrl-C), SIGTERM (what a cluster scheduler sends) or SIGHUP
(a closed terminal or ssh session, handled as SIGTERM).

The first signal is acknowledged at once on stderr and asks the run to stop after the round (or
evaluation) in progress: it writes a checkpoint, its summary and curves, and exits with 128 + the
signal number (130, 143, 129). A second signal stops at once, keeping the last checkpoint written
(if there is none, the message says so). Before the run's rounds are set up (the pre-run checks,
composing the config), a signal ends the command at once with that code and one line.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from hiso.launch import launched_rank

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """The run stopped on a signal; `where` says at which round and what was kept.
    `between_rounds`: every process stopped after the same round (a first signal), so that they
    can leave their process group together; a second signal stops one wherever it is."""

    def __init__(self, signum: int, where: str, between_rounds: bool = False) -> None:
        self.signum = signum
        self.where = where
        self.between_rounds = between_rounds
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Within the block, SIGINT and SIGTERM set `signum` (the run checks `requested()` between
    rounds); a second signal raises Interrupted wherever the run is. Handlers are restored on
    exit. Outside the main thread (where Python cannot install handlers) signals keep their
    default behaviour."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum, "at once (a second signal)")
        self.signum = signum
        _say(
            f"hiso-run: {signal.Signals(signum).name} received: stopping after the current "
            "round/evaluation (a second signal stops at once)"
        )

    def requested(self) -> bool:
        return self.signum is not None


def _say(line: str) -> None:
    """One line on stderr from a signal handler (os.write: safe while Python is printing); under
    a launcher of several processes, each of which gets the signal, from the main one alone."""
    if launched_rank() == 0:
        os.write(sys.stderr.fileno(), (line + "\n").encode())


def _exit_while_starting(signum: int, frame: FrameType | None) -> None:
    _say(f"hiso-run: stopped by {signal.Signals(signum).name} while starting; no round was run")
    raise SystemExit(128 + signum)


@contextmanager
def exit_on_signals_while_starting() -> Iterator[None]:
    """Within the block, until a run's StopSignals take over: a signal ends the command with
    128 + its number and one line, no traceback (context managers and `finally` blocks still
    clean up). The previous handlers are restored on leaving it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _exit_while_starting) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
