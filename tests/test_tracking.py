"""Tracking: metrics.jsonl, summary.json, curves.png and a real offline wandb run read back."""

from __future__ import annotations

import fcntl
import json
import math
import os
import pty
import struct
import sys
import termios
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hiso.schema import LoggerConfig, WandbConfig
from hiso.tracking.records import human_bytes, human_duration, read_jsonl, summarize
from hiso.tracking.tracker import WANDB_ID, Tracker
from hiso.tracking.wandb_reader import (
    read_records,
    read_wandb_offline_history,
    read_wandb_offline_summary,
    read_wandb_run_ids,
    run_files,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "logger"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# round 0 has a long round_time so that including it would move the median (2.5 -> 3.0)
ROUND_TIMES = [10.0, 1.0, 3.0, 2.0, 5.0]
# test accuracy peaks at round 2, validation at round 4 and reaches 0.7 only there: a summary
# that selected (best round, rounds to target) on the test split would say round 2
ACCURACY = {0: 0.5, 2: 0.8, 4: 0.75}
VALIDATION = {0: 0.45, 2: 0.65, 4: 0.78}


def make_history() -> list[dict]:
    """Five rounds: 80 B uplink and 1000*r B downlink per round (40 B and 60 B a round in the
    papers' conventions), evaluation at rounds 0, 2, 4."""
    history, up, down, wall = [], 0, 0, 0.0
    for r, round_time in enumerate(ROUND_TIMES):
        up += 80 if r else 0
        down += 1000 * r
        wall += round_time
        record: dict = {"round": r}
        if r:
            record["train_loss"] = math.nan if r == 3 else 2.0 - 0.25 * r
        record |= {
            "uplink_bytes": 80 if r else 0,
            "downlink_bytes": 1000 * r,
            "cumulative_uplink_bytes": up,
            "cumulative_downlink_bytes": down,
            "cumulative_bytes": up + down,
            "paper_bytes_hiso": 40 if r else 0,  # a round's, as the simulator logs them
            "paper_bytes_decomfl": 60 if r else 0,
            "cumulative_paper_bytes_hiso": 40 * r,
            "cumulative_paper_bytes_decomfl": 60 * r,
            "round_time": round_time,
            "wall_time": wall,
        }
        if r in ACCURACY:
            record |= {"val_loss": 1.0 - VALIDATION[r], "val_accuracy": VALIDATION[r]}
            record |= {"test_loss": 1.0 - ACCURACY[r], "test_accuracy": ACCURACY[r], "test_f1": 0.1}
            record |= {"val_examples": 50, "test_examples": 200}
        history.append(record)
    return history


def log_all(tracker: Tracker, history: list[dict]) -> None:
    for record in history:
        tracker.log(record)


def test_offline_run_writes_every_sink_and_reads_back(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    tracker = Tracker(run_dir, LoggerConfig(), {"algo": {"name": "hiso"}}, total_rounds=4)
    log_all(tracker, make_history())
    summary = tracker.finish({"peak_memory_bytes": 123, "algorithm": "hiso"}, target_accuracy=0.7)

    expected = {
        "selection_split": "validation",
        "initial_val_accuracy": 0.45,
        "initial_test_accuracy": 0.5,
        "final_val_accuracy": 0.78,
        "final_test_accuracy": 0.75,
        "best_val_accuracy": 0.78,
        "best_round": 4,
        "rounds_to_target": 4,
        "target_accuracy": 0.7,
        "target_split": "val",
        "seconds_per_round": 2.5,
        "total_seconds": 21.0,
        "total_bytes": 10320,
        "total_uplink_bytes": 320,
        "total_downlink_bytes": 10000,
        "paper_bytes_hiso": 160,
        "paper_bytes_decomfl": 240,
        "rounds": 4,
        "final_test_loss": 0.25,
        "final_train_loss": 1.0,
        "val_examples": 50,
        "test_examples": 200,
        "peak_memory_bytes": 123,
        "algorithm": "hiso",
        "status": "finished",
        "round_reached": 4,
    }
    assert summary == pytest.approx(expected)
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert len(rows) == 5
    assert rows[3]["train_loss"] is None  # NaN is written as null, key kept
    assert rows[4] == make_history()[4]
    assert "train_loss" not in rows[0]

    assert (run_dir / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert (run_dir / "curves.png").stat().st_size > 10_000

    assert len(run_files(run_dir / "wandb")) == 1
    assert read_wandb_offline_history(run_dir / "wandb") == rows
    # the wandb run's summary is summary.json's: totals and finals, not the last round's row
    assert {
        k: v for k, v in read_wandb_offline_summary(run_dir / "wandb").items() if k in summary
    } == summary
    assert rows[-1]["paper_bytes_hiso"] != summary["paper_bytes_hiso"] == 160

    # pytest's captured stderr is no terminal: plain lines at the evaluations (rounds 0, 2, 4)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [
        "round 0/4  val_loss 0.55  val_accuracy 45.00%  test_loss 0.5  test_accuracy 50.00%  "
        "test_f1 0.1  bytes 0 B",
        "round 2/4  loss 1.5  val_loss 0.35  val_accuracy 65.00%  test_loss 0.2  "
        "test_accuracy 80.00%  test_f1 0.1  bytes 3.086 KiB  2 s/round  eta 0:00:14",
        "round 4/4  loss 1  val_loss 0.22  val_accuracy 78.00%  test_loss 0.25  "
        "test_accuracy 75.00%  test_f1 0.1  bytes 10.08 KiB  3.5 s/round",
    ]


def test_plain_lines_every_log_every_rounds_without_a_terminal(tmp_path: Path, capsys) -> None:
    cfg = LoggerConfig(console=True, wandb=WandbConfig(mode="disabled"), plot=False, log_every=3)
    tracker = Tracker(tmp_path, cfg, {}, total_rounds=7)
    for r in range(8):
        record = {"round": r, "train_loss": 1.0, "cumulative_bytes": 100 * r, "round_time": r}
        record["wall_time"] = r * (r + 1) / 2
        if r == 5:
            record["val_accuracy"] = 0.123456
        tracker.log(record)
    tracker.finish({}, None)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == ["0/7", "3/7", "5/7", "6/7", "7/7"]
    # rounds 1-3: (1 + 2 + 3) / 3 s each; 4 rounds left at the 6 s / 3 rounds so far
    assert lines[1].endswith("bytes 300 B  2 s/round  eta 0:00:08")
    assert "val_accuracy 12.35%" in lines[2] and lines[2].endswith("4.5 s/round  eta 0:00:06")
    assert lines[4].endswith("7 s/round")  # the last round: nothing left


def test_a_terminal_gets_the_progress_bar(tmp_path: Path, monkeypatch) -> None:
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # 160 columns
    terminal = os.fdopen(side, "w")
    monkeypatch.setattr(sys, "stderr", terminal)
    tracker = Tracker(
        tmp_path, LoggerConfig(wandb=WandbConfig(mode="disabled"), plot=False), {}, total_rounds=4
    )
    log_all(tracker, make_history())
    tracker.finish({}, None)
    terminal.flush()
    shown = os.read(main, 1 << 16).decode()
    terminal.close()
    os.close(main)
    assert "\r" in shown and "acc=78.00%" in shown and "bytes=10.08 KiB" in shown


def test_close_on_error_keeps_metrics_and_marks_wandb_failed(tmp_path: Path) -> None:
    cfg = LoggerConfig(console=False)
    tracker = Tracker(tmp_path, cfg, {}, total_rounds=4, run_name="crash")
    log_all(tracker, make_history()[:3])
    tracker.close_on_error(RuntimeError("loss is NaN"))

    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert read_wandb_offline_history(tmp_path / "wandb") == rows
    exits = [r.exit.exit_code for r in read_records(tmp_path / "wandb") if r.HasField("exit")]
    assert exits == [1]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["round_reached"] == 2
    assert summary["error"] == "RuntimeError: loss is NaN"


def test_resumed_tracker_rewrites_metrics_to_its_history_and_replays_it(tmp_path: Path) -> None:
    history = make_history()
    stopped = Tracker(
        tmp_path, LoggerConfig(console=False, wandb=WandbConfig(mode="disabled")), {}, 4
    )
    log_all(stopped, history)  # the stopped process logged rounds 0-4; its checkpoint holds 0-2
    (tmp_path / "summary.json").write_text("{}")
    checkpointed = read_jsonl(tmp_path / "metrics.jsonl")[:3]

    resumed = Tracker(tmp_path, LoggerConfig(console=False), {}, 4, history=checkpointed)
    assert not (tmp_path / "summary.json").exists()
    assert read_jsonl(tmp_path / "metrics.jsonl") == checkpointed
    log_all(resumed, history[3:])
    summary = resumed.finish({}, target_accuracy=0.7)

    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in rows] == list(range(5))
    assert rows == json.loads(json.dumps(resumed.history))
    assert read_wandb_offline_history(tmp_path / "wandb") == rows  # one run, the whole history
    assert summary["round_reached"] == 4 and summary["initial_test_accuracy"] == ACCURACY[0]


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path: Path) -> None:
    history = make_history()
    stopped = Tracker(tmp_path, LoggerConfig(console=False, plot=False), {}, 4)
    log_all(stopped, history)
    stopped.finish({}, None, "interrupted", 143)
    checkpointed = read_jsonl(tmp_path / "metrics.jsonl")[:3]
    resumed = Tracker(
        tmp_path, LoggerConfig(console=False, plot=False), {}, 4, history=checkpointed
    )
    log_all(resumed, history[3:])
    summary = resumed.finish({}, None)
    first, again = read_wandb_run_ids(tmp_path / "wandb")
    assert first == again == (tmp_path / WANDB_ID).read_text().strip()
    assert (
        read_wandb_offline_summary(tmp_path / "wandb")["round_reached"] == summary["round_reached"]
    )
    fresh = tmp_path / "fresh"  # a run that starts (no history) is a new wandb run
    Tracker(fresh, LoggerConfig(console=False, plot=False), {}, 4).finish({}, None)
    assert read_wandb_run_ids(fresh / "wandb") != [first]


def test_wandb_fields_name_the_run(tmp_path: Path) -> None:
    fields = WandbConfig(
        project="p", entity=None, group="sweep-7", tags=["a", "b"], name=None, notes="why"
    )
    tracker = Tracker(
        tmp_path, LoggerConfig(console=False, plot=False, wandb=fields), {}, 1, "r-s0"
    )
    tracker.finish({}, None)
    (run,) = [r.run for r in read_records(tmp_path / "wandb") if r.HasField("run")]
    assert (run.project, run.run_group, list(run.tags), run.display_name, run.notes) == (
        "p",
        "sweep-7",
        ["a", "b"],
        "r-s0",
        "why",
    )


def test_disabled_wandb_creates_no_wandb_dir(tmp_path: Path) -> None:
    cfg = OmegaConf.merge(OmegaConf.structured(LoggerConfig), OmegaConf.load(CONF / "none.yaml"))
    tracker = Tracker(tmp_path, cfg, {}, total_rounds=2)
    tracker.log({"round": 0, "test_accuracy": 0.25})
    tracker.log({"round": 1, "train_loss": 0.5, "skipped": 1})
    summary = tracker.finish({}, target_accuracy=None)

    assert not (tmp_path / "wandb").exists()
    assert not (tmp_path / "curves.png").exists()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[1]["skipped"] == 1
    assert rows[1]["round_time"] >= 0 and rows[1]["wall_time"] >= rows[0]["wall_time"]
    assert summary["initial_test_accuracy"] == 0.25 and summary["rounds_to_target"] is None
    assert summary["final_test_accuracy"] is None  # the last round was not scored
    assert summary["best_val_accuracy"] is None and summary["selection_split"] is None


def test_summarize_target_not_reached_and_empty_history() -> None:
    summary = summarize(make_history(), target_accuracy=0.9)
    assert summary["rounds_to_target"] is None and summary["best_round"] == 4
    empty = summarize([], target_accuracy=0.5)
    assert empty["final_test_accuracy"] is None and empty["seconds_per_round"] is None
    assert empty["rounds"] == 0


def test_read_jsonl_drops_a_torn_last_line_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"round": 0}\n{"round": 1}\n{"rou')
    assert read_jsonl(path) == [{"round": 0}, {"round": 1}]
    path.write_text('{"round": 0}\n{"rou\n{"round": 2}\n')
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(path)


@pytest.mark.parametrize("name", ["default", "none"])
def test_logger_group_files_fit_the_schema(name: str) -> None:
    cfg = OmegaConf.merge(OmegaConf.structured(LoggerConfig), OmegaConf.load(CONF / f"{name}.yaml"))
    assert cfg.wandb.mode == ("offline" if name == "default" else "disabled")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 20 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "20 MiB",
        "3 GiB",
    ]


def test_human_duration() -> None:
    assert [human_duration(s) for s in (None, 42.0, 420.0, 3570.0, 7500.0, 86400.0)] == [
        "-",
        "42.0 s",
        "7 min",
        "1h 00m",
        "2h 05m",
        "24h 00m",
    ]


def test_curves_footer_names_the_key_hyperparameters(tmp_path: Path) -> None:
    config = {
        "algo": {"name": "hiso", "num_perturbations": 5},
        "optim": {"lr": 1e-5, "batch_size": 8},
        "seed": 3,
    }
    tracker = Tracker(
        tmp_path, LoggerConfig(console=False, wandb=WandbConfig(mode="disabled")), config, 1
    )
    assert tracker.footer.startswith("hiso")
    assert all(part in tracker.footer for part in ("lr=1e-05", "P=5", "batch=8", "seed=3"))
    tracker.finish({}, target_accuracy=None)
