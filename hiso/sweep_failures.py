"""A sweep goes on past a run that fails, and says so at its end.

A run that stops on a NaN loss or a replica mismatch exits with code 1 when it runs alone. In a
sweep (`hiso-run -m`) the job returns instead, so the other jobs still run (a diverging learning
rate is one cell of a grid, not the end of it); its summary.json says `failed` with the error.
When the sweep ends, `FailedRuns` (a Hydra callback, conf/config.yaml) lists the runs of this
sweep whose summary says failed and exits with code 1. It reads the run directories rather than
the jobs' return values, so it works whichever launcher ran the jobs and in whichever process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def failed_runs(sweep_dir: Path, since: float) -> list[tuple[Path, str]]:
    """Run directories under `sweep_dir` whose summary.json, written at or after `since` (a
    time.time()), says failed, with the error it records."""
    failed = []
    for path in sorted(sweep_dir.rglob("summary.json")):
        if path.stat().st_mtime < since:
            continue
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("status") == "failed":
            failed.append((path.parent, str(summary.get("error", "no error recorded"))))
    return failed


class FailedRuns(Callback):
    """At the end of a sweep: one line per failed run of this sweep, then exit code 1."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        failed = failed_runs(sweep_dir, self.started - 1)
        if not failed:
            return
        lines = [f"hiso-run: {len(failed)} run(s) of this sweep failed; the others ran:"]
        lines += [f"  {run_dir}: {error}" for run_dir, error in failed]
        print("\n".join(lines), file=sys.stderr)
        sys.exit(1)
