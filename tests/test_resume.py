"""Checkpoints and exact resume: the file format's checks, a state round trip in process, and the
real `hiso-run` killed (SIGKILL), stopped (SIGINT, SIGTERM) and resumed, compared with runs
that were never stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from test_cli import HISO_RUN, hiso_run
from test_lm_federation import lm_simulation

from hiso.cli import run
from hiso.config import compose_config
from hiso.optim import seed_pool
from hiso.resume import prepare, reconcile
from hiso.schema import SetupError
from hiso.stop import Interrupted, StopSignals
from hiso.tracking.checkpoint import (
    Checkpoints,
    CorruptCheckpoint,
    read_checkpoint,
    write_checkpoint,
)
from hiso.tracking.records import read_jsonl
from hiso.tracking.wandb_reader import read_records, read_wandb_run_ids, run_files

import lm_fixtures
from configs import digits_simulation

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


# ---- the checkpoint file ------------------------------------------------------------------
def test_checkpoint_round_trip_and_every_kind_of_damage_is_detected(tmp_path: Path) -> None:
    state = {"parameters": [torch.randn(300)], "history": [b"\x01\x02"], "round": 7}
    path = tmp_path / "round-000007.ckpt"
    write_checkpoint(path, state)
    assert_same_state(read_checkpoint(path), state)
    good = path.read_bytes()
    damaged = {
        "truncated": good[: len(good) // 2],
        "trailer cut": good[:-5],
        "empty": b"",
        "flipped byte": good[:100] + bytes([good[100] ^ 1]) + good[101:],
    }
    for kind, data in damaged.items():
        path.write_bytes(data)
        with pytest.raises(CorruptCheckpoint):
            read_checkpoint(path)
            pytest.fail(f"{kind} was not detected")


def test_checkpoints_keep_the_newest_and_fall_back_past_a_damaged_one(tmp_path: Path) -> None:
    store = Checkpoints(tmp_path / "checkpoints", keep=2)
    for rnd in (10, 20, 30):
        store.save(rnd, {"round": rnd})
    assert [r for r, _ in store.files()] == [30, 20]
    newest = store.path(30)
    newest.write_bytes(newest.read_bytes()[:-10])
    loaded = store.load_newest()
    assert loaded.state == {"round": 20} and loaded.path == store.path(20)
    assert len(loaded.rejected) == 1 and "round-000030.ckpt" in loaded.rejected[0]
    # resumed from 20, the run saves 25: the abandoned (and damaged) 30 goes
    store.save(25, {"round": 25})
    assert [r for r, _ in store.files()] == [25, 20]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


def test_first_signal_asks_second_stops_at_once_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not stop.requested() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as second:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)  # interrupted by the handler at once
        assert second.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is before


# ---- the state, in process -----------------------------------------------------------------
@pytest.mark.parametrize("algo", ["hiso", "decomfl", "fedavg", "fedadam", "fedzo"])
def test_state_round_trip_through_a_file_continues_exactly(algo: str, tmp_path: Path) -> None:
    extra = (
        f"algo={algo}",
        "optim.momentum=0.9",
        "federation.local_steps=2",
        "federation.rounds=30",
    )
    assert_round_trip_continues_exactly(tmp_path, (*extra, "federation.eval_every=7"), 13)


def assert_round_trip_continues_exactly(tmp_path: Path, overrides: tuple, stop_at: int) -> None:
    """A digits run stopped after round `stop_at`, checkpointed to a file and resumed from it
    in a new simulation gives the uninterrupted run's rows and final state bit for bit."""
    full, rows = digits_simulation(*overrides), []
    full.run(rows.append)
    first, resumed = digits_simulation(*overrides), []
    first.run(resumed.append, stop=lambda: first.round == stop_at)
    write_checkpoint(tmp_path / "c.ckpt", first.state_dict())
    second = digits_simulation(*overrides)
    second.load_state_dict(read_checkpoint(tmp_path / "c.ckpt"))
    second.run(resumed.append)
    assert timeless(resumed) == timeless(rows)
    assert_same_state(second.state_dict(), full.state_dict())


@pytest.mark.parametrize("matrix_bytes", [seed_pool.POOL_MATRIX_BYTES, 0])
@pytest.mark.parametrize("algo", ["fedkseed", "fedkseed-pro"])
def test_seed_pool_state_round_trip_through_a_file_continues_exactly(
    algo: str, matrix_bytes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FedKSeed's accumulated scalars (and Pro's seed history, and the integer sums a language
    model's pool keeps) survive a checkpoint: the resumed run equals the uninterrupted one bit
    for bit."""
    monkeypatch.setattr(seed_pool, "POOL_MATRIX_BYTES", matrix_bytes)
    extra = (f"algo={algo}", "algo.num_perturbations=1", "algo.seed_pool=16", "federation.rounds=8")
    assert_round_trip_continues_exactly(tmp_path, (*extra, "federation.eval_every=3"), 5)


@pytest.fixture(scope="module")
def tiny_opt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = lm_fixtures.tiny_opt()
    return lm_fixtures.save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("tiny-opt"))


def test_language_model_state_round_trip_continues_exactly(
    tiny_opt_dir: Path, tmp_path: Path
) -> None:
    extra = ("algo=hiso", "optim.momentum=0.9", "federation.rounds=6", "federation.eval_every=3")
    full, rows = lm_simulation(tiny_opt_dir, *extra), []
    full.run(rows.append)

    first, resumed = lm_simulation(tiny_opt_dir, *extra), []
    first.run(resumed.append, stop=lambda: first.round == 2)
    write_checkpoint(tmp_path / "c.ckpt", first.state_dict())
    second = lm_simulation(tiny_opt_dir, *extra)
    second.load_state_dict(read_checkpoint(tmp_path / "c.ckpt"))
    second.run(resumed.append)

    assert timeless(resumed) == timeless(rows)
    assert_same_state(second.state_dict(), full.state_dict())


# ---- the real CLI ---------------------------------------------------------------------------
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


# a real SIGKILL and resume once in the default suite (HiSo: the most state); DeComFL and FedAvg,
# whose states are round-tripped in-process above, in `make test-slow`
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


# the fallback and the raised rounds are tested in-process (test_checkpoints_keep_the_newest_...,
# test_reconcile_...); this real-process run of both is in `make test-slow`
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


# ---- which config a resumed run continues with ------------------------------------------------
def saved_run(*overrides: str) -> dict:
    return OmegaConf.to_container(compose_config([*DIGITS, *overrides]), resolve=True)


def test_reconcile_applies_free_changes_and_names_the_refused_ones() -> None:
    saved = list(DIGITS)
    cfg, merged = reconcile(
        saved_run(),
        saved,
        ["federation.rounds=500", "federation.eval_every=5", "logger.wandb.mode=offline"],
        at=40,
    )
    assert (cfg.federation.rounds, cfg.federation.eval_every, cfg.logger.wandb.mode) == (
        500,
        5,
        "offline",
    )
    assert "federation.rounds=500" in merged and "federation.rounds=300" not in merged
    assert cfg.optim.momentum == 0.9 and cfg.model.name == "cnn"

    cases = {
        ("seed=3",): "seed=3",
        ("algo=decomfl",): "algo.name='decomfl'",
        ("federation.rounds=30",): "below round 40",
    }
    for new, named in cases.items():
        with pytest.raises(SetupError, match=re.escape(named)):
            reconcile(saved_run(), saved, list(new), at=40)
    cosine = [*saved, "optim.lr_schedule=cosine"]
    with pytest.raises(SetupError, match="cosine"):
        reconcile(saved_run("optim.lr_schedule=cosine"), cosine, ["federation.rounds=400"], at=40)
    # the same command line again is no change, even where a default has changed since
    changed_default = saved_run() | {"seed": 11}
    cfg, _ = reconcile(changed_default, saved, saved, at=40)
    assert cfg.seed == 11


def test_prepare_missing_directories_fresh_starts_and_finished_runs(tmp_path: Path) -> None:
    cfg = compose_config([*DIGITS, f"resume={tmp_path / 'nowhere'}"])
    with pytest.raises(SetupError, match="no such run directory"):
        prepare(cfg, tmp_path / "out", [])
    (tmp_path / "empty").mkdir()
    cfg = compose_config([*DIGITS, f"resume={tmp_path / 'empty'}"])
    with pytest.raises(SetupError, match="no usable checkpoint"):
        prepare(cfg, tmp_path / "out", [])
    fresh = prepare(compose_config([*DIGITS, "resume=auto"]), tmp_path / "out", [])
    assert fresh.state is None and fresh.finished is None and fresh.run_dir == tmp_path / "out"
    # no checkpoint: a finished run is still recognised (summaries older than `status` too)
    out = tmp_path / "out"
    out.mkdir()
    for summary, skipped in (
        ({"status": "finished", "round_reached": 300}, True),
        ({"status": "finished", "round_reached": 200}, False),
        ({"status": "interrupted", "round_reached": 300}, False),
        ({"rounds": 300}, True),
    ):
        (out / "summary.json").write_text(json.dumps(summary))
        start = prepare(compose_config([*DIGITS, "resume=auto"]), out, [])
        assert (start.finished == summary) == skipped and start.state is None
