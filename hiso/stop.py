"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (what a cluster scheduler sends).

The first signal asks the run to stop after the round in progress: it writes a checkpoint, its
summary and curves, and exits with 128 + the signal number (130, 143). A second signal stops at
once, keeping the last checkpoint written.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped on a signal; `where` says at which round and what was kept."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.where = where
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

    def requested(self) -> bool:
        return self.signum is not None
