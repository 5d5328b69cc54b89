"""The per-run metrics sink: console progress, metrics.jsonl, wandb, summary.json and curves.png."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wandb
from tqdm import tqdm

from hiso.tracking.plots import plot_run
from hiso.tracking.records import human_bytes, json_safe, summarize

if TYPE_CHECKING:
    from hiso.config import LoggerConfig

# No console capture, system metrics, metadata probes, git or requirements snapshots: a run
# starts in about half a second offline and writes only what is logged.
_WANDB_SETTINGS = {
    "console": "off",
    "silent": True,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "x_save_requirements": False,
    "disable_git": True,
    "save_code": False,
}
_POSTFIX = ("loss", "acc", "bytes")
_SCORES = ("val_", "test_")


class Tracker:
    """Send each round's metrics to every configured sink and write the run's summary and curves.

    Records are stored as given, except that non-finite floats become None (null in JSON, key
    kept), and `round_time` / `wall_time` are filled from the tracker's clock when the caller
    omits them. wandb files land under run_dir/wandb; mode "disabled" never touches wandb.
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: LoggerConfig,
        config: dict,
        total_rounds: int,
        run_name: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.title = run_name or self.run_dir.name
        self.history: list[dict] = []
        self._run: wandb.Run | None = None
        if cfg.wandb != "disabled":
            self._run = wandb.init(
                project=cfg.project,
                name=run_name,
                config=config,
                dir=self.run_dir,
                mode=cfg.wandb,
                reinit="create_new",
                settings=wandb.Settings(**_WANDB_SETTINGS),
            )
        jsonl_path = self.run_dir / "metrics.jsonl"
        self._jsonl = jsonl_path.open("w", encoding="utf-8") if cfg.jsonl else None
        self._bar = (
            tqdm(total=total_rounds, unit="round", file=sys.stderr, dynamic_ncols=True)
            if cfg.console
            else None
        )
        self._postfix: dict[str, str] = {}
        self._start = self._last = time.perf_counter()

    def log(self, metrics: dict[str, float | int]) -> None:
        """Record one round (the dict must hold "round"): console, JSONL line (flushed), wandb."""
        now = time.perf_counter()
        timed: dict[str, Any] = dict(metrics)
        timed.setdefault("round_time", now - self._last)
        timed.setdefault("wall_time", now - self._start)
        record = json_safe(timed)
        self._last = now
        self.history.append(record)
        if self._jsonl:
            self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
            self._jsonl.flush()
        if self._run:
            self._run.log(record, step=record["round"])
        if self._bar:
            self._show(self._bar, record)

    def _show(self, bar: tqdm, record: dict) -> None:
        if record.get("train_loss") is not None:
            self._postfix["loss"] = f"{record['train_loss']:.4g}"
        accuracy = record.get("val_accuracy", record.get("test_accuracy"))
        if accuracy is not None:
            self._postfix["acc"] = f"{accuracy:.2%}"
        if record.get("cumulative_bytes") is not None:
            self._postfix["bytes"] = human_bytes(record["cumulative_bytes"])
        shown = [f"{key}={self._postfix[key]}" for key in _POSTFIX if key in self._postfix]
        bar.set_postfix_str(", ".join(shown), refresh=False)
        bar.update(record["round"] - bar.n)
        scores = {k: v for k, v in record.items() if k.startswith(_SCORES) and v is not None}
        if scores:
            values = "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
            bytes_ = human_bytes(record.get("cumulative_bytes") or 0)
            tqdm.write(f"round {record['round']}/{bar.total}  {values}  bytes {bytes_}")

    def finish(
        self, summary_extra: dict[str, float | int | str | None], target_accuracy: float | None
    ) -> dict:
        """Write summary.json (and curves.png when cfg.plot), finish wandb, return the summary."""
        summary = json_safe(summarize(self.history, target_accuracy) | summary_extra)
        (self.run_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        if self.cfg.plot and self.history:
            plot_run(self.history, self.run_dir / "curves.png", self.title)
        if self._run:
            self._run.summary.update(summary)
        self._close(exit_code=0)
        return summary

    def close_on_error(self, error: BaseException) -> None:
        """Close every sink after a failure; the wandb run ends failed (exit code 1)."""
        if self._run:
            self._run.summary.update({"error": f"{type(error).__name__}: {error}"})
        self._close(exit_code=1)

    def _close(self, exit_code: int) -> None:
        if self._bar:
            self._bar.close()
            self._bar = None
        if self._jsonl:
            self._jsonl.close()
            self._jsonl = None
        if self._run:
            self._run.finish(exit_code=exit_code)
            self._run = None
            # finish() can return before wandb's service has written the run's last records;
            # teardown waits for it, so the offline files are complete when close returns
            wandb.teardown()
