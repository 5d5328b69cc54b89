"""What `hiso-run` says on the console when a run ends: its figures, or why it stopped and how
(or whether) it can continue."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hiso.stop import Interrupted
    from hiso.tracking.unwritten import OutputError


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    print(f"[hiso-run] {summary_line(summary)}; outputs in {run_dir}")


def summary_line(summary: dict[str, Any]) -> str:
    """The figures of a finished run, rounded: accuracies in percent, seconds to 3 significant
    digits, bytes in binary units."""
    from hiso.tracking.records import human_bytes

    def shown(key: str) -> str:
        value = summary.get(key)
        if value is None:
            return "n/a"
        if key.endswith("accuracy") or key.endswith("accuracy_at_best"):
            return f"{value:.2%}"
        if key == "seconds_per_round":
            return f"{value:.3g}"
        if key == "total_bytes":
            return human_bytes(value)
        return str(value)

    keys = (
        "initial_test_accuracy",
        "final_test_accuracy",
        "best_val_accuracy",
        "best_round",
        "test_accuracy_at_best",
        "rounds_to_target",
        "seconds_per_round",
        "total_bytes",
    )
    line = ", ".join(f"{key}={shown(key)}" for key in keys)
    skipped = summary.get("skipped_rounds")
    return line + (f"; {skipped} rounds skipped (NaN/inf, nan_policy=skip)" if skipped else "")


def print_skipped(summary: dict[str, Any], cfg: Any, run_dir: Path) -> None:
    from hiso.resume import finished_rounds

    print(
        f"hiso-run: {run_dir} already finished {finished_rounds(summary)} rounds "
        f"(federation.rounds={cfg.federation.rounds}); skipped, its outputs kept as they are"
    )


def newest_checkpoint(run_dir: Path) -> int | None:
    from hiso.resume import CHECKPOINTS
    from hiso.tracking.checkpoint import Checkpoints

    files = Checkpoints(run_dir / CHECKPOINTS, keep=1).files()
    return files[0][0] if files else None


def has_trajectory(run_dir: Path) -> bool:
    """Whether a replayable run's trajectory, which resume= replays, is on disk."""
    from hiso.tracking.trajectory import TRAJECTORY

    return (run_dir / TRAJECTORY).is_file()


def print_unwritten(error: OutputError, run_dir: Path) -> None:
    """The run's one line after an output it could not write: the file, what and why, the files
    left incomplete or missing, and whether (and how) it can continue."""
    unwritten = f"; not written: {', '.join(error.unwritten)}" if error.unwritten else ""
    newest = newest_checkpoint(run_dir)
    kept = (
        "its trajectory holds the rounds completed"
        if newest is None
        else (f"the newest checkpoint is round {newest}")
    )
    after = (
        "no checkpoint is left to resume from: run the command again to start over"
        if newest is None and not has_trajectory(run_dir)
        else f"{kept}: once the cause is fixed (space freed, the directory writable), continue "
        f"with: hiso-run resume={run_dir}"
    )
    print(f"hiso-run: stopped: {error}{unwritten}; {after}", file=sys.stderr)


def print_interrupted(stopped: Interrupted, run_dir: Path) -> None:
    """The run's last line: where it stopped, and how to continue only when a checkpoint to
    continue from is on disk (a checkpoint, or a replayable run's trajectory)."""
    if newest_checkpoint(run_dir) is None and not has_trajectory(run_dir):
        print(
            f"hiso-run: {stopped}; no checkpoint was written, so there is nothing to resume: "
            "run the command again to start over",
            file=sys.stderr,
        )
        return
    print(
        f"hiso-run: {stopped}; checkpoint, summary.json (status interrupted) and curves in "
        f"{run_dir}; continue with: hiso-run resume={run_dir}",
        file=sys.stderr,
    )
