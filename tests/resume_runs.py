"""Exact-resume runs on digits in tests: the command line, what is compared (bit for bit, less
what depends on the clock and the machine), a real `hiso-run` started and watched until it is
past a checkpoint, and an uninterrupted reference run in this process."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cli import HISO_RUN

from hiso.cli import run
from hiso.config import compose_config
from hiso.tracking.checkpoint import Checkpoints, read_checkpoint
from hiso.tracking.records import read_jsonl

# what depends on the clock and on the machine's state (the direction cache's reason quotes the
# memory free when the process started)
TIME_KEYS = {
    "round_time",
    "wall_time",
    "seconds_per_round",
    "total_seconds",
    "peak_memory_bytes",
    "direction_cache_reason",
}
# Digits at about 10 ms a round: K = 2 local steps, momentum, constant lr (a cosine schedule
# would forbid raising federation.rounds); evaluations and checkpoints on different rounds.
DIGITS = (
    "+experiment=digits",
    "federation.rounds=300",
    "federation.eval_every=25",
    "federation.local_steps=2",
    "algo.num_perturbations=2",
    "optim.batch_size=16",
    "optim.momentum=0.9",
    "optim.lr_schedule=constant",
    "checkpoint.every=20",
    "checkpoint.keep=3",
    "logger=none",
)
WAIT_S = 240


def timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Equal nested state, tensors bit for bit; the wall time spent is not compared."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        keys = a.keys() - {"elapsed"}
        assert keys == b.keys() - {"elapsed"}, where
        for k in keys:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    assert HISO_RUN is not None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_SILENT": "true"}
    return subprocess.Popen(
        [HISO_RUN, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def newest_checkpoint(run_dir: Path) -> int | None:
    files = Checkpoints(run_dir / "checkpoints", keep=1).files()
    return files[0][0] if files else None


def last_round(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    rows = read_jsonl(path) if path.exists() else []
    return rows[-1]["round"] if rows else -1


def wait_until_past_a_checkpoint(process: subprocess.Popen[str], run_dir: Path, at: int) -> None:
    """Poll until a checkpoint of round >= `at` exists and rounds after it have been logged."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ckpt = newest_checkpoint(run_dir)
        if ckpt is not None and ckpt >= at and last_round(run_dir) >= ckpt + 3:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended first (rc {process.returncode}): {process.stderr.read()}")
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"no checkpoint of round >= {at} within {WAIT_S} s")


def reference(tmp_path: Path, *overrides: str) -> tuple[list[dict], dict, dict]:
    """An uninterrupted run, in this process: metrics, summary, final checkpoint."""
    run_dir = tmp_path / "reference"
    summary = run(compose_config([*DIGITS, *overrides]), run_dir)
    final = read_checkpoint(Checkpoints(run_dir / "checkpoints", 1).files()[0][1])
    return read_jsonl(run_dir / "metrics.jsonl"), summary, final


def assert_same_run(run_dir: Path, expected: tuple[list[dict], dict, dict]) -> None:
    rows, summary, final = expected
    assert timeless(read_jsonl(run_dir / "metrics.jsonl")) == timeless(rows)
    got = json.loads((run_dir / "summary.json").read_text())
    assert {k: v for k, v in got.items() if k not in TIME_KEYS} == {
        k: v for k, v in summary.items() if k not in TIME_KEYS
    }
    ckpt = read_checkpoint(Checkpoints(run_dir / "checkpoints", 1).files()[0][1])
    assert_same_state(ckpt["simulation"], final["simulation"])
    assert timeless(ckpt["tracker"]["history"]) == timeless(final["tracker"]["history"])
