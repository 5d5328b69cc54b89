"""One writer per run directory (hiso/run_lock.py), with real processes: a second run into a
directory in use is refused naming the holder's pid, a lock file left by a dead process is taken
over, and a sweep that would resume one directory twice is refused before any job starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import hiso_run

from hiso.run_lock import LOCK_FILE, RunBusy, RunLock

from resume_runs import start

QUICK = ("+experiment=digits", "federation.rounds=3", "federation.eval_every=3", "logger=none")


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_into_a_directory_in_use_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    first = start(*QUICK, "federation.rounds=1000000", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / LOCK_FILE).exists():
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.05)
        second = hiso_run(*QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert first.poll() is None  # the holder runs on
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid} on" in lines[0], second.stderr
    assert "in use by another hiso-run" in lines[0]


def test_the_lock_itself_refuses_a_second_holder_and_is_removed_on_release(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hiso.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(RunBusy, match=f"pid {holder.pid} on"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(tmp_path)  # the kernel dropped the killed holder's lock
    lock.acquire()
    assert (tmp_path / LOCK_FILE).read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_file_of_a_dead_process_is_taken_over_with_a_notice(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pid = dead_pid()
    (run_dir / LOCK_FILE).write_text(f"{pid} elsewhere\n")
    result = hiso_run(*QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    notices = [line for line in result.stderr.splitlines() if "taking over" in line]
    assert len(notices) == 1 and f"pid {pid} on elsewhere" in notices[0], result.stderr
    assert (run_dir / "summary.json").exists() and not (run_dir / LOCK_FILE).exists()


def test_a_sweep_resuming_one_directory_twice_is_refused_before_any_job(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sweep_dir = tmp_path / "sweep"
    result = hiso_run(
        "-m",
        f"resume={run_dir}",
        "federation.rounds=25,30",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"would resume {run_dir} at once" in lines[0], result.stderr
    assert not sweep_dir.exists() and list(run_dir.iterdir()) == []
