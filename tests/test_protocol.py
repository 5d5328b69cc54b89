"""Message encodings and the byte meter against the analytic counts."""

from __future__ import annotations

import numpy as np
import pytest

from hiso.federation.protocol import ClientReport, ModelPayload, RoundPlan, RoundRecord
from hiso.federation.server import sample_clients

from configs import digits_simulation


def test_messages_round_trip_with_exact_sizes() -> None:
    rng = np.random.default_rng(0)
    scalars = rng.standard_normal((3, 5)).astype(np.float32)
    plan = RoundPlan(7, (1, 2**32 - 1, 12345))
    report = ClientReport(7, scalars)
    record = RoundRecord(7, plan.seeds, scalars)
    assert len(plan.encode()) == 6 + 4 * 3
    assert len(report.encode()) == 8 + 4 * 15
    assert len(record.encode()) == 8 + 4 * 3 + 4 * 15
    assert RoundPlan.decode(plan.encode()) == plan
    decoded = ClientReport.decode(report.encode())
    assert decoded.round == 7 and np.array_equal(decoded.scalars, scalars)
    decoded_record = RoundRecord.decode(record.encode())
    assert decoded_record.seeds == plan.seeds
    assert np.array_equal(decoded_record.scalars, scalars)


def test_model_payload_size_is_its_encoding() -> None:
    import torch

    payload = ModelPayload((torch.zeros(3, 4), torch.ones(5)))
    assert payload.nbytes == len(payload.encode()) == 17 * 4


def expected_bytes(
    seed: int, rounds: int, clients: int, sampled: int, steps: int, dirs: int
) -> tuple[int, int, int]:
    """Uplink, downlink and scalar bytes from the sampling schedule and the message layouts."""
    synced = [0] * clients
    up = down = scalars = 0
    for rnd in range(rounds):
        for c in sample_clients(seed, rnd, clients, sampled):
            missed = rnd - synced[c]
            synced[c] = rnd
            up += 8 + 4 * steps * dirs
            down += 6 + 4 * steps + missed * (8 + 4 * steps + 4 * steps * dirs)
            scalars += 4 * steps * dirs * (1 + missed)
    return up, down, scalars


@pytest.mark.parametrize(
    ("clients", "sampled", "steps", "dirs"),
    [(8, 2, 1, 5), (5, 5, 1, 5), (6, 3, 3, 2), (10, 1, 2, 1)],
)
def test_metered_bytes_equal_the_analytic_count(
    clients: int, sampled: int, steps: int, dirs: int
) -> None:
    rounds = 9
    sim = digits_simulation(
        "algo=decomfl",
        f"federation.num_clients={clients}",
        f"federation.clients_per_round={sampled}",
        f"federation.local_steps={steps}",
        f"algo.num_perturbations={dirs}",
        f"federation.rounds={rounds}",
        "optim.batch_size=2",
    )
    records: list[dict] = []
    sim.run(records.append)
    last = records[-1]
    up, down, scalars = expected_bytes(sim.cfg.seed, rounds, clients, sampled, steps, dirs)
    assert last["cumulative_uplink_bytes"] == up
    assert last["cumulative_downlink_bytes"] == down
    assert last["cumulative_bytes"] == up + down
    assert last["cumulative_scalar_bytes"] == scalars
    assert sum(r["uplink_bytes"] + r["downlink_bytes"] for r in records) == up + down
    assert sum(sim.wire.per_client[c][0] for c in range(clients)) == up


def test_papers_convention_40_bytes_per_client_per_round() -> None:
    """HiSo's tables: K=1, P=5, every client in every round -> 5 scalars up, 5 down."""
    sim = digits_simulation(
        "algo=hiso",
        "federation.num_clients=2",
        "federation.clients_per_round=2",
        "algo.num_perturbations=5",
        "federation.rounds=6",
        "optim.batch_size=2",
    )
    records: list[dict] = []
    sim.run(records.append)
    # round 1 has no record to catch up on; from round 2 on each client receives one record
    per_round = np.diff([r["cumulative_scalar_bytes"] for r in records[1:]])
    assert list(per_round) == [2 * 40] * 5


def test_fedavg_meters_the_full_model_both_ways() -> None:
    sim = digits_simulation("algo=fedavg", "federation.rounds=3", "optim.batch_size=4")
    records: list[dict] = []
    sim.run(records.append)
    d = sim.num_parameters
    sampled = sim.cfg.federation.clients_per_round
    for r in records[1:]:
        assert r["uplink_bytes"] == r["downlink_bytes"] == sampled * d * 4
    assert records[-1]["cumulative_bytes"] == 3 * sampled * 2 * d * 4
