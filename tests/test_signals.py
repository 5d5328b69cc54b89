"""Signals outside the round loop, with the real `hiso-run`: a SIGINT or SIGTERM during the pre-run
checks ends the command with 130/143 and one line, no traceback. (Signals during the rounds,
SIGHUP included, are tested with exact resume in test_resume_cli.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli import HISO_RUN


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_pre_run_checks_exits_cleanly(
    sig: signal.Signals, code: int, tmp_path: Path
) -> None:
    # the checks block reading a wandb key from $NETRC, a named pipe nobody writes to yet
    fifo = tmp_path / "netrc"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    assert HISO_RUN is not None
    process = subprocess.Popen(
        [HISO_RUN, "+experiment=digits", "logger.wandb.mode=online", f"hydra.run.dir={tmp_path}/r"],
        cwd=tmp_path,
        env={**env, "NETRC": str(fifo), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:  # a writer can open the pipe once the checks wait on it as its reader
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the checks never read $NETRC"
            time.sleep(0.02)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    os.close(writer)
    assert process.returncode == code, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"hiso-run: stopped by {sig.name} while starting; no round was run"
    ], err[-3000:]
    assert not (tmp_path / "r").exists()
