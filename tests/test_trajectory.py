"""A replayable run's trajectory: the file keeps whole rounds, and replaying it from the starting
model rebuilds the run's state at any round bit for bit (model, optimizer state, clients' data
positions, server history, wire counters, best round), for the digits CNN and a tiny OPT."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
from test_cli import hiso_run
from test_lm_federation import lm_simulation

from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.resume import keeps_best_model
from hiso.schema import ConfigError
from hiso.tasks import build_task
from hiso.tracking.records import json_safe
from hiso.tracking.trajectory import TrajectoryWriter, read_trajectory

import lm_fixtures
from configs import CPU, DEVICES, digits_config, digits_simulation
from resume_runs import (
    DIGITS,
    WAIT_S,
    assert_same_run,
    assert_same_state,
    last_round,
    reference,
    start,
    timeless,
)


def recorded(simulation: Simulation, stop_at: int | None = None) -> tuple[list[bytes], list[dict]]:
    """Run `simulation` (to its end, or until round `stop_at`) keeping its trajectory entries
    and its metrics."""
    entries: list[bytes] = []
    rows: list[dict] = []
    simulation.run(
        lambda row: rows.append(json_safe(row)),  # NaN as None, as metrics.jsonl holds it
        stop=lambda: simulation.round == stop_at,
        on_round=lambda: entries.append(simulation.algorithm.trajectory_entry()),
    )
    return entries, rows


def assert_replay_rebuilds(make: object, stop_at: int) -> None:
    """A run stopped at `stop_at` and a fresh simulation replaying its trajectory hold the same
    state; the replayed one, run on, gives the uninterrupted run's rows and state."""
    assert callable(make)
    full: Simulation = make()
    _, full_rows = recorded(full)
    first: Simulation = make()
    entries, rows = recorded(first, stop_at)
    assert len(entries) == stop_at and len(rows) == stop_at + 1
    replayed: Simulation = make()
    replayed.replay(entries, [dict(r, wall_time=0.0) for r in rows])
    assert replayed.round == stop_at
    assert_same_state(replayed.state_dict(), first.state_dict())
    _, more = recorded(replayed)
    assert timeless(rows + more) == timeless(full_rows)
    assert_same_state(replayed.state_dict(), full.state_dict())


@pytest.mark.parametrize(
    "extra",
    [
        ("algo=hiso", "optim.momentum=0.9", "federation.local_steps=2"),
        ("algo=decomfl", "federation.eval_every=4"),
        ("algo=fedkseed", "algo.num_perturbations=1", "algo.seed_pool=16"),
        ("algo=fedkseed-pro", "algo.num_perturbations=1", "algo.seed_pool=16"),
        # rounds 2 on skipped (the model diverges): empty entries, the skipped-round counters
        ("algo=decomfl", "nan_policy=skip", "optim.lr=1e18", "federation.max_skipped_rounds=99"),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_replay_rebuilds_the_digits_run_bit_for_bit(extra: tuple, device: torch.device) -> None:
    overrides = (*extra, "federation.rounds=14", "federation.eval_every=3")
    assert_replay_rebuilds(lambda: digits_simulation(*overrides, device=device), 8)


def test_replay_rebuilds_a_language_model_run_bit_for_bit(tmp_path: Path) -> None:
    model, tokenizer = lm_fixtures.tiny_opt()
    checkpoint = lm_fixtures.save_checkpoint(model, tokenizer, tmp_path / "opt")
    extra = ("algo=hiso", "optim.momentum=0.9", "federation.rounds=6", "federation.eval_every=2")
    assert_replay_rebuilds(lambda: lm_simulation(checkpoint, *extra), 4)


def test_a_snapshot_without_the_best_model_resumes_exactly() -> None:
    """A replayable run's snapshot leaves the best round's model out (best_by_replay): resuming
    from it rebuilds that model by replay, and the run ends as the uninterrupted one."""
    overrides = (
        "optim.lr=1e-2",
        "optim.momentum=0.9",
        "federation.rounds=14",
        "federation.eval_every=3",
    )

    def make() -> Simulation:
        cfg = digits_config(*overrides)
        model, tokenizer = build_model(cfg.model, CPU, cfg.seed)
        return Simulation(cfg, model, build_task(cfg, tokenizer), CPU, best_by_replay=True)

    full = make()
    _, full_rows = recorded(full)
    first = make()
    entries, rows = recorded(first, 11)
    snapshot = first.state_dict()
    assert snapshot["best"]["replay"] and snapshot["best"]["parameters"] is None
    assert snapshot["best"]["round"] == 3  # not the snapshot's round, nor the starting model
    resumed = make()
    resumed.resume(snapshot, entries, rows)
    _, more = recorded(resumed)
    assert timeless(rows + more) == timeless(full_rows)
    assert_same_state(resumed.state_dict(), full.state_dict())
    best = resumed.evaluation.best_parameters()  # what the test split scores at the end
    assert_same_state(best, full.evaluation.best_parameters())
    assert not all(torch.equal(b, x) for b, x in zip(best, resumed.master, strict=True))
    with pytest.raises(ValueError, match="leaves round"):
        make().resume(snapshot, entries[:1], rows[:2])


def test_keep_zero_is_accepted_for_scalar_only_runs_and_refused_for_dense_ones() -> None:
    for algo in ("hiso", "decomfl"):
        assert digits_config(f"algo={algo}", "checkpoint.keep=0").checkpoint.keep == 0
    refused = (
        "checkpoint.keep=0 is not allowed: an integer >= 1 with algo={}: its rounds move the whole "
        "model, so only a full snapshot resumes it or rebuilds its model (0 is for the "
        "algorithms whose rounds are seeds and scalars, rebuilt from their trajectory: "
        "decomfl, fedkseed, fedkseed-pro, hiso, mezo)."
    )
    for algo in ("fedavg", "fedadam", "fedzo"):
        with pytest.raises(ConfigError) as error:
            digits_config(f"algo={algo}", "checkpoint.keep=0")
        assert str(error.value) == refused.format(algo)
    # no round to resume: `hiso-run eval`'s keep=0 stands for any algorithm
    digits_config("algo=fedavg", "checkpoint.keep=0", "federation.rounds=0")
    with pytest.raises(ConfigError, match=r"logger\.jsonl=false: without a snapshot"):
        digits_config("checkpoint.keep=0", "logger.jsonl=false")


def test_best_model_is_kept_when_asked_or_when_replay_cannot_rebuild_it() -> None:
    assert not keeps_best_model(digits_config("algo=hiso"))
    assert keeps_best_model(digits_config("algo=hiso", "checkpoint.best_model=true"))
    assert keeps_best_model(digits_config("algo=fedavg"))
    assert not keeps_best_model(digits_config("algo=fedavg", "checkpoint.best_model=false"))


def test_a_dense_run_is_not_replayable() -> None:
    simulation = digits_simulation("algo=fedavg")
    with pytest.raises(TypeError, match="algo=fedavg: its rounds are not replayable"):
        simulation.replay([], [])


def test_the_file_keeps_whole_rounds_and_its_header(tmp_path: Path) -> None:
    path = tmp_path / "trajectory.bin"
    header = {"config": {"seed": 3}, "overrides": ["seed=3"]}
    writer = TrajectoryWriter(path, header, [b"a" * 20])
    writer.append(b"")  # a skipped round
    writer.append(b"b" * 20)
    text = b'{"config": {"seed": 3}, "overrides": ["seed=3"]}'
    assert path.stat().st_size == 8 + 4 + len(text) + 3 * 4 + 40  # 4 bytes a frame beside its entry
    read = read_trajectory(path)
    assert read.header == header and read.entries == [b"a" * 20, b"", b"b" * 20]
    path.write_bytes(path.read_bytes()[:-3])  # a frame cut short by a killed process
    assert read_trajectory(path).entries == [b"a" * 20, b""]
    # a resumed run rewrites the file with the rounds it continues from, then appends
    TrajectoryWriter(path, header, read_trajectory(path).entries[:1])
    assert read_trajectory(path).entries == [b"a" * 20]


def test_sigkill_with_snapshots_off_resumes_by_replay_exactly(tmp_path: Path) -> None:
    """The real hiso-run with checkpoint.keep=0 (no full snapshot) killed mid-run: resume=
    rebuilds the model by replaying the trajectory and ends as the uninterrupted run, metrics
    and final state (its snapshot, asked for on the resuming command line) bit for bit."""
    run_dir = tmp_path / "run"
    victim = start(*DIGITS, "checkpoint.keep=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    expected = reference(tmp_path)  # meanwhile, in this process
    deadline = time.monotonic() + WAIT_S
    while last_round(run_dir) < 50 and time.monotonic() < deadline:
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=WAIT_S)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "summary.json").exists()
    trajectory = read_trajectory(run_dir / "trajectory.bin")
    reached = len(trajectory.entries)
    assert 50 <= reached < 300
    # the header (the config), then 4 + 4 x K x P bytes a round (K = P = 2)
    header = len(json.dumps(trajectory.header, sort_keys=True).encode())
    assert (run_dir / "trajectory.bin").stat().st_size == 12 + header + 20 * reached

    result = hiso_run(f"resume={run_dir}", "checkpoint.keep=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, expected)
    assert len(read_trajectory(run_dir / "trajectory.bin").entries) == 300
