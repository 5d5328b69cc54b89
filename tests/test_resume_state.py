"""Checkpoints and exact resume in process: the checkpoint file's checks, the stop signals'
handler, every algorithm's state round trip through a file, and which config a resumed run
continues with. (The real `hiso-run` stopped and resumed: tests/test_resume_cli.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_lm_federation import lm_simulation

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

import lm_fixtures
from configs import digits_simulation
from resume_runs import DIGITS, assert_same_state, timeless


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
