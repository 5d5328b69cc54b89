"""When a `-m` sweep ends, its table: `SweepTable` (a Hydra callback, conf/config.yaml) writes
SWEEP_DIR/sweep.md and sweep.csv (hiso/sweep_summary.py: the overrides that differ, final and best
metrics, mean ± sd over seeds) and prints the markdown. Like hiso/sweep_failures.py it reads the
run directories, so it works whichever launcher ran the jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hiso.sweep_summary import write_tables


class SweepTable(Callback):
    """At the end of a sweep: its table written into the sweep directory and printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        written = write_tables(sweep_dir, sweep_dir / "sweep") if sweep_dir.is_dir() else None
        if written is not None:
            print(written[0].read_text(encoding="utf-8"), end="")
            print(f"(also {written[1]})")
