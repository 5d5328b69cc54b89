"""The per-run metrics sink: console progress, metrics.jsonl, wandb, summary.json and curves.png."""

from __future__ import annotations

import errno
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from hiso.tracking.atomic import write_text_atomic
from hiso.tracking.labels import hyperparameter_line
from hiso.tracking.records import human_bytes, json_safe, summarize
from hiso.tracking.unwritten import EXIT_CODE, OutputError, append_whole, writing

if TYPE_CHECKING:
    import wandb

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

    A file that cannot be written (a full disk, a read-only or vanished directory) raises
    OutputError naming it; metrics.jsonl then ends with the last whole line written. `unwritten`
    lists the files left incomplete or missing, which the summary (status "failed") names.
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
        self.unwritten: list[Path] = []
        with writing("the run directory", self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / SUMMARY).unlink(missing_ok=True)
        self.cfg = cfg
        self.title = run_name or self.run_dir.name
        # a sweep's job: its lines on a console that parallel jobs share start with its name
        self._job = f"[{job}] " if job else ""
        self.footer = hyperparameter_line(config)
        self.history: list[dict] = list(history or [])
        self._run = None if cfg.wandb.mode == "disabled" else self._start_wandb(run_name, config)
        self._jsonl = self.run_dir / "metrics.jsonl" if cfg.jsonl else None
        if self._jsonl:
            with writing("the metrics so far", self._jsonl):
                write_text_atomic(self._jsonl, "".join(_jsonl_line(r) for r in self.history))
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
        import wandb  # here: a run without wandb does not load it (about 0.4 s)

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
        with writing("the wandb run's id", id_file):
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
            try:
                with writing(f"round {record['round']}'s metrics line", self._jsonl):
                    append_whole(self._jsonl, _jsonl_line(record).encode("utf-8"))
            except OutputError as error:
                self.unwritten.append(error.path)
                raise
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
        """Write curves.png (when cfg.plot), finish wandb with `exit_code`, write summary.json and
        return the summary. `status` is "finished", or "interrupted" for a run stopped early.
        A file that cannot be written raises OutputError (the first such) once the others are
        written: the summary then says "failed", with the error and the files `unwritten`."""
        failed = self._plot()
        if self._run:
            self._run.summary.update(self._summary(summary_extra, target_accuracy, status))
        failed = failed or self._close(EXIT_CODE if self.unwritten else exit_code)
        if failed is not None:
            summary_extra = summary_extra | {"error": str(failed)}
        try:
            summary = self._write_summary(summary_extra, target_accuracy, status)
        except OutputError as error:
            failed = failed or error
        if failed is not None:
            failed.unwritten = self.unwritten_names()
            raise failed
        return summary

    def close_on_error(self, error: BaseException) -> None:
        """After a failure: every sink closed, the wandb run ended failed (exit code 1, or
        EXIT_CODE when an output could not be written), summary.json marked "failed" with the
        error when it can be written. An OutputError gets the run's `unwritten` files."""
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, OutputError) and error.path not in self.unwritten:
            self.unwritten.append(error.path)
        if self._run:
            self._run.summary.update({"error": message})
        self._close(exit_code=EXIT_CODE if isinstance(error, OutputError) else 1)
        with suppress(OutputError):  # then summary.json is among the files `unwritten`
            self._write_summary({"error": message}, None, "failed")
        if isinstance(error, OutputError):
            error.unwritten = self.unwritten_names()

    def _plot(self) -> OutputError | None:
        """curves.png, when cfg.plot; a failure is returned (and the file counted unwritten)."""
        if not (self.cfg.plot and self.history):
            return None
        curves = self.run_dir / "curves.png"
        try:
            with writing("the curves figure", curves):
                if not self.run_dir.is_dir():  # removed: the figure does not make it again
                    raise FileNotFoundError(errno.ENOENT, "no such directory", str(curves))
                from hiso.tracking.plots import plot_run  # matplotlib only when plotting

                plot_run(self.history, curves, self.title, self.footer)
        except OutputError as error:
            self.unwritten.append(curves)
            return error
        return None

    def _summary(self, extra: dict[str, Any], target_accuracy: float | None, status: str) -> dict:
        """The run's summary; a run with files unwritten is "failed" and names them (never
        "finished")."""
        marks: dict[str, Any] = {"status": status, "round_reached": self.round_reached}
        if self.unwritten:
            marks |= {"status": "failed", "unwritten": self.unwritten_names()}
        return json_safe(summarize(self.history, target_accuracy) | extra | marks)

    def _write_summary(
        self, extra: dict[str, Any], target_accuracy: float | None, status: str
    ) -> dict:
        """summary.json; raises OutputError (summary.json then among the files unwritten)."""
        summary = self._summary(extra, target_accuracy, status)
        text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
        path = self.run_dir / SUMMARY
        try:
            with writing("the summary", path):
                write_text_atomic(path, text)
        except OutputError:
            self.unwritten.append(path)
            raise
        return summary

    def unwritten_names(self) -> list[str]:
        """The files left incomplete or missing, relative to the run directory."""
        return [
            str(p.relative_to(self.run_dir)) if p.is_relative_to(self.run_dir) else str(p)
            for p in self.unwritten
        ]

    def _close(self, exit_code: int) -> OutputError | None:
        """Close every sink; a wandb run whose files cannot be written is returned as the
        failure (wandb/ counted unwritten). After an earlier failure, wandb's own log lines about
        its files are not printed."""
        if self._bar:
            self._bar.close()
            self._bar = None
        self._jsonl = None
        run, self._run = self._run, None
        if run is None:
            return None
        files = self.run_dir / "wandb"
        quiet = bool(self.unwritten)
        try:
            with writing("the wandb run", files), _logging_errors_shown(not quiet):
                import wandb  # loaded when the run started

                run.finish(exit_code=exit_code)
                # finish() can return before wandb's service has written the run's last
                # records; teardown waits for it, so the offline files are complete here
                wandb.teardown()
        except OutputError as error:
            self.unwritten.append(files)
            return error
        return None


@contextmanager
def _logging_errors_shown(shown: bool) -> Iterator[None]:
    """Within the block, a logging handler that cannot write prints its error (or not)."""
    before = logging.raiseExceptions
    logging.raiseExceptions = shown
    try:
        yield
    finally:
        logging.raiseExceptions = before


def clock(seconds: float) -> str:
    """A duration as H:MM:SS."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _jsonl_line(record: dict) -> str:
    return json.dumps(record, allow_nan=False) + "\n"
