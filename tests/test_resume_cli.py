"""Exact resume of the real `hiso-run`: killed (SIGKILL), stopped (SIGINT, SIGTERM, SIGHUP) and
resumed, compared with runs that were never stopped; a damaged newest checkpoint; a sweep with
resume=auto. (The checkpoint file and the state in process: tests/test_resume_state.py.)"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_cli import hiso_run

from hiso.tracking.checkpoint import Checkpoints
from hiso.tracking.wandb_reader import read_records, read_wandb_run_ids, run_files

from resume_runs import (
    DIGITS,
    WAIT_S,
    assert_same_run,
    last_round,
    newest_checkpoint,
    reference,
    start,
    wait_until_past_a_checkpoint,
)


# a real SIGKILL and resume once in the default suite (HiSo: the most state); DeComFL and FedAvg,
# whose states are round-tripped in-process (test_resume_state.py), in `make test-slow`
@pytest.mark.parametrize(
    "algo",
    [
        "hiso",
        pytest.param("decomfl", marks=pytest.mark.slow),
        pytest.param("fedavg", marks=pytest.mark.slow),
    ],
)
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(algo: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    victim = start(*DIGITS, f"algo={algo}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    expected = reference(tmp_path, f"algo={algo}")  # meanwhile, in this process
    wait_until_past_a_checkpoint(victim, run_dir, at=40)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=WAIT_S)
    at_kill = newest_checkpoint(run_dir)
    assert at_kill is not None and last_round(run_dir) > at_kill  # rows to drop and recompute
    assert not (run_dir / "summary.json").exists()

    result = hiso_run(f"resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, expected)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert not (run_dir / ".hydra" / "overrides.yaml").read_text().count("resume")


@pytest.mark.parametrize(
    ("sig", "code", "again"),
    [
        (signal.SIGINT, 130, "resume=DIR"),
        (signal.SIGTERM, 143, "resume=auto"),  # the same command line again, as a sweep would
        # a closed terminal: SIGTERM's handler path (above), in `make test-slow`
        pytest.param(signal.SIGHUP, 129, "resume=DIR", marks=pytest.mark.slow),
    ],
)
def test_a_signal_stops_cleanly_and_the_run_resumes_exactly(
    sig: signal.Signals, code: int, again: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    command = (*DIGITS, "logger.wandb.mode=offline", "logger.plot=true", f"hydra.run.dir={run_dir}")
    stopped = start(*command, "resume=auto", cwd=tmp_path)
    expected = reference(tmp_path)
    wait_until_past_a_checkpoint(stopped, run_dir, at=20)
    stopped.send_signal(sig)
    _, err = stopped.communicate(timeout=WAIT_S)
    assert stopped.returncode == code, err[-3000:]
    assert "Traceback" not in err
    # the signal acknowledged at once (from the handler), then the run's one last line
    lines = [line for line in err.splitlines() if line.startswith("hiso-run:")]
    name = signal.Signals(sig).name
    assert lines[0] == (
        f"hiso-run: {name} received: stopping after the current round/evaluation "
        "(a second signal stops at once)"
    ), err[-2000:]
    assert len(lines) == 2 and f"hiso-run resume={run_dir}" in lines[1], err[-2000:]
    assert f"stopped by {name} after round" in lines[1]

    summary = json.loads((run_dir / "summary.json").read_text())
    reached = last_round(run_dir)
    assert summary["status"] == "interrupted" and summary["round_reached"] == reached < 300
    assert newest_checkpoint(run_dir) == reached
    assert (run_dir / "curves.png").stat().st_size > 0
    exits = [r.exit.exit_code for r in read_records(run_dir / "wandb") if r.HasField("exit")]
    assert exits == [code]

    args = [f"resume={run_dir}"] if again == "resume=DIR" else [*command, "resume=auto"]
    result = hiso_run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, expected)
    # the resumed run continues the same wandb run (its id) in a second offline file, ended normally
    exits = [r.exit.exit_code for r in read_records(run_dir / "wandb") if r.HasField("exit")]
    assert exits == [code, 0] and len(run_files(run_dir / "wandb")) == 2
    assert len(set(read_wandb_run_ids(run_dir / "wandb"))) == 1


# the fallback and the raised rounds are tested in-process (test_resume_state.py:
# test_checkpoints_keep_the_newest_..., test_reconcile_...); this real-process run of both is in
# `make test-slow`
@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back_and_raised_rounds_continue(tmp_path: Path) -> None:
    """A dense run (FedAvg): rows after the checkpoint it falls back to are recomputed. (A
    replayable run replays its trajectory past that checkpoint instead: tests/test_trajectory.)"""
    run_dir = tmp_path / "run"
    dense = ("algo=fedavg", "optim.lr=0.05")
    first = hiso_run(
        *DIGITS, *dense, "federation.rounds=60", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert [r for r, _ in Checkpoints(run_dir / "checkpoints", 3).files()] == [60, 40, 20]
    newest = run_dir / "checkpoints" / "round-000060.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])

    result = hiso_run(f"resume={run_dir}", "federation.rounds=100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [line for line in result.stderr.splitlines() if "round-000060.ckpt" in line]
    assert len(reports) == 1 and "round-000040.ckpt" in reports[0]
    # rows 41-60 of the first run are dropped and recomputed; evaluations fall on the same rounds
    assert_same_run(run_dir, reference(tmp_path, *dense, "federation.rounds=100"))


def test_a_sweep_with_resume_auto_skips_finished_jobs(tmp_path: Path) -> None:
    sweep = (
        "-m",
        *DIGITS,
        "federation.rounds=20",
        "algo=hiso,fedavg",
        "resume=auto",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweep.subdir=${algo.name}",
    )
    assert hiso_run(*sweep, cwd=tmp_path).returncode == 0
    summaries = {
        d: (tmp_path / "sweep" / d / "summary.json").read_text() for d in ("hiso", "fedavg")
    }
    again = hiso_run(*sweep, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("already finished 20 rounds") == 2
    for d, text in summaries.items():
        assert (tmp_path / "sweep" / d / "summary.json").read_text() == text
        assert json.loads(text)["status"] == "finished"

    refused = hiso_run(
        f"resume={tmp_path / 'sweep' / 'hiso'}", "optim.lr=0.1", "algo=decomfl", cwd=tmp_path
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "optim.lr=0.1" in refused.stderr and "algo.name='decomfl'" in refused.stderr
