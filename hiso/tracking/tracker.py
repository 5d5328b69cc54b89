"""The per-run metrics sink: console progress, metrics.jsonl, wandb, summary.json and curves.png."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wandb
from tqdm import tqdm

from hiso.tracking.atomic import write_text_atomic
from hiso.tracking.labels import hyperparameter_line
from hiso.tracking.plots import plot_run
from hiso.tracking.records import human_bytes, json_safe, summarize

if TYPE_CHECKING:
    from hiso.schema import LoggerConfig

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


def _scores(record: dict) -> dict:
    """An evaluation's figures in a record (not the evaluated split's size)."""
    return {
        k: v
        for k, v in record.items()
        if k.startswith(_SCORES) and not k.endswith("_examples") and v is not None
    }


SUMMARY = "summary.json"
WANDB_ID = "wandb-run-id"  # the run directory's wandb run, continued by a resumed run


class Tracker:
    """Send each round's metrics to every configured sink and write the run's summary and curves.

    Records are stored as given, except that non-finite floats become None (null in JSON, key
    kept), and `round_time` / `wall_time` are filled from the tracker's clock when the caller
    omits them. wandb files land under run_dir/wandb and the wandb run's id in run_dir/WANDB_ID;
    mode "disabled" never touches wandb. The wandb summary holds summary.json's figures (totals
    and finals), set after the last round's row.

    A resumed run passes the `history` of its checkpoint: metrics.jsonl is rewritten to exactly
    those records (rows logged after the checkpoint by the stopped process are dropped, so the
    file ends as an uninterrupted run's would), and a new wandb run in the same directory gets
    them replayed before the new rounds (offline), so the newest file holds the whole history;
    it is the same wandb run (the stored id), continued.
    A summary.json already in the directory is removed: only a run that ends writes one.
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: LoggerConfig,
        config: dict,
        total_rounds: int,
        run_name: str | None = None,
        history: list[dict] | None = None,
        job: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / SUMMARY).unlink(missing_ok=True)
        self.cfg = cfg
        self.title = run_name or self.run_dir.name
        # a sweep's job: its lines on a console that parallel jobs share start with its name
        self._job = f"[{job}] " if job else ""
        self.footer = hyperparameter_line(config)
        self.history: list[dict] = list(history or [])
        self._run = None if cfg.wandb.mode == "disabled" else self._start_wandb(run_name, config)
        self._jsonl = None
        if cfg.jsonl:
            jsonl_path = self.run_dir / "metrics.jsonl"
            write_text_atomic(jsonl_path, "".join(_jsonl_line(r) for r in self.history))
            self._jsonl = jsonl_path.open("a", encoding="utf-8")
        self.total_rounds = total_rounds
        self._bar = (
            tqdm(
                total=total_rounds,
                initial=self.round_reached or 0,
                unit="round",
                desc=job,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            if cfg.console and sys.stderr.isatty()
            else None
        )
        self._lines = cfg.console and self._bar is None
        self._postfix: dict[str, str] = {}
        self._start = self._last = time.perf_counter()
        self._unshown: list[float] = []  # round times logged since the last plain line

    def _start_wandb(self, run_name: str | None, config: dict) -> wandb.Run:
        """The run's wandb run: a resumed run (one with a history) continues the run whose id is
        stored in the run directory; any other starts a new one and stores its id. Offline, the
        history is replayed into the new file, so the newest file holds it all."""
        w = self.cfg.wandb
        id_file = self.run_dir / WANDB_ID
        known = id_file.read_text().strip() if self.history and id_file.is_file() else None
        run = wandb.init(
            project=w.project,
            entity=w.entity,
            group=w.group,
            tags=list(w.tags),
            name=w.name or run_name,
            notes=w.notes,
            config=config,
            dir=self.run_dir,
            mode=w.mode,
            id=known,
            resume="allow" if known else None,
            reinit="create_new",
            settings=wandb.Settings(**_WANDB_SETTINGS),
        )
        write_text_atomic(id_file, run.id + "\n")
        if w.mode == "offline":  # online, the wandb server already holds these rounds
            for record in self.history:
                run.log(record, step=record["round"], commit=True)
        return run

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
            self._jsonl.write(_jsonl_line(record))
            self._jsonl.flush()
        if self._run:  # committed now: a row held back to the run's end would overwrite the summary
            self._run.log(record, step=record["round"], commit=True)
        if self._bar:
            self._show(self._bar, record)
        elif self._lines:
            self._print_line(record)

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
        scores = _scores(record)
        if scores:
            values = "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
            bytes_ = human_bytes(record.get("cumulative_bytes") or 0)
            tqdm.write(f"round {record['round']}/{bar.total}  {values}  bytes {bytes_}")

    def _print_line(self, record: dict) -> None:
        """Without a terminal: one line per evaluation and every log_every rounds, no bar; the
        seconds per round are the mean round time since the previous line, the eta the rounds
        left at the run's mean wall time per round so far (evaluations included)."""
        rnd = record["round"]
        if rnd:
            self._unshown.append(record.get("round_time") or 0.0)
        scores = _scores(record)
        if not scores and rnd % self.cfg.log_every and rnd != self.total_rounds:
            return
        parts = [f"round {rnd}/{self.total_rounds}"]
        if record.get("train_loss") is not None:
            parts.append(f"loss {record['train_loss']:.4g}")
        parts += [
            f"{key} {value:.2%}" if key.endswith("accuracy") else f"{key} {value:.4g}"
            for key, value in scores.items()
        ]
        parts.append(f"bytes {human_bytes(record.get('cumulative_bytes') or 0)}")
        if self._unshown:
            parts.append(f"{sum(self._unshown) / len(self._unshown):.3g} s/round")
        self._unshown = []
        if rnd and record.get("wall_time") and rnd < self.total_rounds:
            parts.append(f"eta {clock(record['wall_time'] / rnd * (self.total_rounds - rnd))}")
        print(self._job + "  ".join(parts), file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """One line on the console between rounds (e.g. a long evaluation starting)."""
        if self._bar:
            tqdm.write(self._job + message, file=sys.stderr)
        elif self._lines:
            print(self._job + message, file=sys.stderr, flush=True)

    @property
    def round_reached(self) -> int | None:
        """The last round logged (None before round 0 is)."""
        return self.history[-1]["round"] if self.history else None

    def state_dict(self) -> dict[str, list[dict]]:
        """The metrics so far, for a checkpoint (a resumed Tracker takes them as `history`)."""
        return {"history": self.history}

    def finish(
        self,
        summary_extra: dict[str, float | int | str | None],
        target_accuracy: float | None,
        status: str = "finished",
        exit_code: int = 0,
    ) -> dict:
        """Write summary.json (and curves.png when cfg.plot), finish wandb with `exit_code`,
        return the summary. `status` is "finished", or "interrupted" for a run stopped early."""
        summary = self._write_summary(summary_extra, target_accuracy, status)
        if self.cfg.plot and self.history:
            plot_run(self.history, self.run_dir / "curves.png", self.title, self.footer)
        if self._run:
            self._run.summary.update(summary)
        self._close(exit_code=exit_code)
        return summary

    def close_on_error(self, error: BaseException) -> None:
        """After a failure: summary.json marked "failed" with the error, every sink closed, the
        wandb run ended failed (exit code 1)."""
        message = f"{type(error).__name__}: {error}"
        self._write_summary({"error": message}, None, "failed")
        if self._run:
            self._run.summary.update({"error": message})
        self._close(exit_code=1)

    def _write_summary(
        self, extra: dict[str, Any], target_accuracy: float | None, status: str
    ) -> dict:
        marks = {"status": status, "round_reached": self.round_reached}
        summary = json_safe(summarize(self.history, target_accuracy) | extra | marks)
        text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
        write_text_atomic(self.run_dir / SUMMARY, text)
        return summary

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


def clock(seconds: float) -> str:
    """A duration as H:MM:SS."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _jsonl_line(record: dict) -> str:
    return json.dumps(record, allow_nan=False) + "\n"
