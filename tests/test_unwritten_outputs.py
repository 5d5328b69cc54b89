"""A run whose outputs cannot be written (hiso/tracking/unwritten.py), with the real `hiso-run` on
real file systems: a small tmpfs that fills mid-run, a read-only mount, a folder it may not write,
its run directory removed under it. Each stops with exit code 74 and one message naming the file
and what was being written, no traceback, nothing reported as written that was not; after space
is freed, `resume=` gives the uninterrupted run's metrics."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import HISO_RUN

from hiso.cli import run
from hiso.config import compose_config
from hiso.schema import LoggerConfig
from hiso.tracking.records import read_jsonl
from hiso.tracking.tracker import Tracker
from hiso.tracking.unwritten import EXIT_CODE, OutputError

from resume_runs import start, timeless

RUN = (
    "+experiment=digits",
    "federation.rounds=40",
    "federation.eval_every=10",
    "checkpoint.every=5",
)
QUICK = (*RUN, "hydra/job_logging=disabled")


def _namespaces_work() -> bool:
    """Whether this user may mount a tmpfs in a user and mount namespace of its own."""
    try:
        return (
            subprocess.run(
                ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_mounts = pytest.mark.skipif(
    not _namespaces_work(), reason="cannot mount a tmpfs here (unshare -rm refused)"
)


def in_namespace(script: str, tmp_path: Path, *unshare: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a user and mount namespace of its own (its mounts vanish with it),
    with the environment of the real CLI; `hiso-run` in it is the console script."""
    assert HISO_RUN is not None
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_SILENT": "true",
        "HISO_RUN": HISO_RUN,
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
    }
    return subprocess.run(
        ["unshare", *(unshare or ("-rm",)), "sh", "-euc", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_message(err: str, *parts: str) -> str:
    """stderr holds no traceback and one hiso-run line, which names `parts`; it is returned."""
    assert "Traceback" not in err and "Logging error" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("hiso-run:")]
    assert len(lines) == 1, err[-3000:]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def assert_whole_lines(path: Path) -> list[dict]:
    """metrics.jsonl ends with a whole line (or is empty); its rows, in order."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), text[-200:]
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["round"] for r in rows] == list(range(len(rows)))
    return rows


@needs_mounts
def test_a_full_disk_stops_with_one_message_and_resumes_exactly_once_space_is_freed(
    tmp_path: Path,
) -> None:
    disk, run_dir = tmp_path / "disk", tmp_path / "disk" / "run"
    disk.mkdir()
    command = shlex.join([*QUICK, "logger.wandb.mode=offline", "logger.plot=true"])
    script = f"""
        mount -t tmpfs -o size=100k tmpfs {disk}
        rc=0; "$HISO_RUN" {command} hydra.run.dir={run_dir} 2>full.err || rc=$?
        echo $rc > full.rc; cp -a {run_dir} after-full
        mount -o remount,size=20m {disk}
        rc=0; "$HISO_RUN" resume={run_dir} 2>resumed.err || rc=$?
        echo $rc > resumed.rc; cp -a {run_dir} after-resume
    """
    result = in_namespace(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int((tmp_path / "full.rc").read_text()) == EXIT_CODE
    line = assert_one_message(
        (tmp_path / "full.err").read_text(), "No space left on device (ENOSPC)", str(run_dir)
    )
    full = tmp_path / "after-full"
    rows = assert_whole_lines(full / "metrics.jsonl")
    assert len(rows) < 41
    summary = full / "summary.json"
    if summary.exists():  # a summary that fitted says what failed, never "finished"
        written = json.loads(summary.read_text())
        assert written["status"] == "failed" and written["unwritten"], written
    else:
        assert "summary.json" in line.partition("not written: ")[2], line
    assert not list(full.rglob("*.tmp*"))  # no temporary file left behind
    assert "continue with: hiso-run resume=" in line

    assert int((tmp_path / "resumed.rc").read_text()) == 0, (tmp_path / "resumed.err").read_text()
    reference = tmp_path / "reference"
    run(compose_config([*RUN, "logger=none"]), reference)
    resumed = tmp_path / "after-resume"
    assert timeless(read_jsonl(resumed / "metrics.jsonl")) == timeless(
        read_jsonl(reference / "metrics.jsonl")
    )
    assert json.loads((resumed / "summary.json").read_text())["status"] == "finished"


# the same path as the full disk's, another errno: in `make test-slow`
@pytest.mark.slow
@needs_mounts
def test_a_read_only_checkpoint_folder_stops_the_run_with_one_message(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    command = shlex.join([*QUICK, "logger=none"])
    script = f"""
        mount -t tmpfs -o ro,size=64k tmpfs {run_dir / "checkpoints"}
        rc=0; "$HISO_RUN" {command} hydra.run.dir={run_dir} || rc=$?
        echo $rc > ro.rc
    """
    result = in_namespace(script, tmp_path)
    assert int((tmp_path / "ro.rc").read_text()) == EXIT_CODE, result.stderr[-3000:]
    line = assert_one_message(
        result.stderr,
        "cannot write the checkpoint of round 5",
        "Read-only file system (EROFS)",
        # no checkpoint, but the trajectory beside it holds every round: resume replays it
        "its trajectory holds the rounds completed",
        f"continue with: hiso-run resume={run_dir}",
    )
    assert "checkpoints/round-000005.ckpt" in line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "EROFS" in summary["error"]
    assert summary["unwritten"] == ["checkpoints/round-000005.ckpt"]
    assert [r["round"] for r in assert_whole_lines(run_dir / "metrics.jsonl")] == list(range(6))


# the same path as the full disk's, another errno: in `make test-slow`
@pytest.mark.slow
@needs_mounts
def test_a_folder_the_run_may_not_write_stops_it_with_one_message(tmp_path: Path) -> None:
    # as a user without root's capabilities (uid 1000 in a namespace of its own): permissions hold
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints").chmod(0o555)
    command = shlex.join([*QUICK, "logger=none", f"hydra.run.dir={run_dir}"])
    result = in_namespace(
        f'HOME={tmp_path} "$HISO_RUN" {command}', tmp_path, "--user", "--map-user=1000"
    )
    assert result.returncode == EXIT_CODE, result.stderr[-3000:]
    assert_one_message(result.stderr, "the checkpoint of round 5", "Permission denied (EACCES)")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def test_a_run_directory_removed_mid_run_stops_it_with_one_message(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    victim = start(*QUICK, "federation.rounds=100000", "logger=none", f"hydra.run.dir={run_dir}",
                   cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "round-000005.ckpt").exists():
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        _, err = victim.communicate(timeout=120)
    finally:
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
    assert victim.returncode == EXIT_CODE, err[-3000:]
    assert_one_message(err, f"its directory {run_dir} no longer exists", "(ENOENT)", "summary.json")
    assert not run_dir.exists()  # nothing made it again


FILL = """
import sys
from pathlib import Path
from hiso.tracking.unwritten import append_whole
path, n = Path(sys.argv[1]), 0
try:
    while True:
        append_whole(path, b'{"round": %d, "pad": "%s"}\\n' % (n, b"x" * 300))
        n += 1
except OSError as error:
    print(error.errno)
"""


@needs_mounts
def test_a_line_cut_short_by_a_full_disk_is_cut_off_again(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
        mount -t tmpfs -o size=16k tmpfs {disk}
        {shlex.quote(sys.executable)} -c {shlex.quote(FILL)} {disk}/metrics.jsonl
        cp {disk}/metrics.jsonl {tmp_path}/copy.jsonl
    """
    result = in_namespace(script, tmp_path)
    assert result.stdout.strip() == str(errno.ENOSPC), result.stderr[-3000:]
    rows = assert_whole_lines(tmp_path / "copy.jsonl")
    assert len(rows) > 40  # the disk, not something else, stopped the appends


def test_a_figure_that_cannot_be_written_is_no_finished_run(tmp_path: Path) -> None:
    (tmp_path / "curves.png").mkdir()  # a folder in the figure's place: the write fails
    tracker = Tracker(tmp_path, LoggerConfig(console=False, plot=True), {}, total_rounds=1)
    tracker.log({"round": 0, "val_accuracy": 0.5})
    tracker.log({"round": 1, "val_accuracy": 0.6})
    with pytest.raises(OutputError, match="cannot write the curves figure") as raised:
        tracker.finish({}, None)
    assert raised.value.unwritten == ["curves.png"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["unwritten"] == ["curves.png"]
    assert "curves figure" in summary["error"] and summary["best_val_accuracy"] == 0.6
