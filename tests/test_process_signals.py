"""Two processes under the real launcher, stopped or refused: SIGINT to the launcher stops every
process after the same round (the main one checkpoints, the other leaves the process group with
it: no gloo traceback), and `python -m hiso.launch` refuses an invalid field before any process
starts, with hiso-run's one message and exit code 2 (not torchrun's ChildFailedError)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_processes import ONE_MACHINE, free_port

from hiso.preflight import exit_input_error
from hiso.tracking.checkpoint import Checkpoints

ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_SILENT": "true"}
# many rounds, evaluated only at round 0: the signal comes while rounds run
LONG = ("+experiment=digits", "device=cpu", "threads=1", "logger.wandb.mode=disabled")
LONG += ("federation.rounds=100000", "federation.eval_every=100000", "logger.log_every=1")


def hiso_launch(*overrides: str, cwd: Path) -> list[str]:
    """`python -m hiso.launch` of 2 CPU processes, in the form of README's accelerate launch."""
    launcher = ["--config_file", str(ONE_MACHINE), "--num_processes", "2"]
    launcher += ["--main_process_port", str(free_port())]
    return [sys.executable, "-m", "hiso.launch", *launcher, "-m", "hiso.cli", *overrides]


def test_an_invalid_field_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        hiso_launch("+experiment=digits", "device=cpu", "optim.lr=-1", cwd=tmp_path),
        cwd=tmp_path,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        "hiso-run: optim.lr=-1.0 is not allowed: a number > 0."
    ]
    assert not (tmp_path / "outputs").exists()


def test_under_a_launcher_only_the_main_process_prints_an_input_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, printed in (("1", ""), ("0", "hiso-run: wrong\n")):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as stopped:
            exit_input_error("wrong")
        assert stopped.value.code == 2 and capsys.readouterr().err == printed


def test_sigint_stops_both_processes_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        hiso_launch(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path),
        cwd=tmp_path,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not metrics.is_file() or len(metrics.read_text().splitlines()) < 2:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no round was run"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the signal goes to the launcher
    _, err = process.communicate(timeout=90)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("hiso-run:")]
    assert len(ours) == 2 and ours[0].startswith("hiso-run: SIGINT received: stopping"), err
    stopped = re.fullmatch(r"hiso-run: stopped by SIGINT after round (\d+) of 100000; .*", ours[1])
    assert stopped is not None and f"continue with: hiso-run resume={run_dir}" in ours[1]
    last = int(stopped.group(1))
    newest = Checkpoints(run_dir / "checkpoints", keep=1).load_newest()
    assert newest.state is not None and newest.state["simulation"]["round"] == last
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["round_reached"] == last


@pytest.mark.parametrize("given", [None, "45"])
def test_the_launch_gives_stopping_processes_time_to_finish_their_round(
    given: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchrun kills its processes 30 s after Ctrl-C unless TORCH_ELASTIC_SHUTDOWN_TIMEOUT says
    otherwise: `python -m hiso.launch` sets it (a value the user set is kept), and the installed
    torch reads it."""
    from torch.distributed.launcher.api import LaunchConfig

    from hiso import launch

    if given is None:
        monkeypatch.delenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", given)
    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: execs.append(argv))
    monkeypatch.setattr(sys, "argv", ["hiso.launch", "--num_processes", "2", "-m", "hiso.cli"])
    launch.main()
    assert execs and execs[0][1:] == ["launch", "--num_processes", "2", "-m", "hiso.cli"]
    expected = given or str(launch.SHUTDOWN_GRACE)
    assert os.environ["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == expected
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2)
    assert config.shutdown_timeout == int(expected)
