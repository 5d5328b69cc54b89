"""When a `-m` sweep ends, its table: `SweepTable` (a Hydra callback, conf/config.yaml) writes
SWEEP_DIR/sweep.md and sweep.csv (hiso/sweep_summary.py: the overrides that differ, final and best
metrics, mean ± sd over seeds) and prints the markdown. Like hiso/sweep_failures.py it reads the
run directories, so it works whichever launcher ran the jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hiso.schema import SetupError
from hiso.sweep_summary import write_tables
from hiso.tracking.unwritten import OutputError


class SweepTable(Callback):
    """At the end of a sweep: its table written into the sweep directory and printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            written = write_tables(sweep_dir, sweep_dir / "sweep") if sweep_dir.is_dir() else None
        except (SetupError, OutputError) as error:  # the runs are done: the table is a bonus
            print(f"hiso-run: no table of the sweep: {error}", file=sys.stderr)
            return
        if written is not None:
            print(written[0].read_text(encoding="utf-8"), end="")
            print(f"(also {written[1]})")
