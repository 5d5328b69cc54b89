"""Message encodings and the byte meter against the analytic counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiso.federation.server import sample_clients
from hiso.federation.wire import Wire
from hiso.protocol import ClientReport, ModelPayload, RoundPlan, RoundRecord

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
    assert last["cumulative_scalar_bytes_all_clients"] == scalars
    assert sum(r["uplink_bytes"] + r["downlink_bytes"] for r in records) == up + down
    assert sum(sim.wire.per_client[c][0] for c in range(clients)) == up


@pytest.mark.parametrize(("algo", "steps", "dirs"), [("hiso", 1, 5), ("decomfl", 3, 2)])
def test_papers_conventions_count_one_clients_own_round(algo: str, steps: int, dirs: int) -> None:
    """The papers' federation (6 clients, 2 sampled): 8KP and 12KP bytes per round, where
    counting both sampled clients, the catch-up records or the uplink alone would each differ."""
    rounds = 8
    sim = digits_simulation(
        f"algo={algo}",
        "federation.num_clients=6",
        "federation.clients_per_round=2",
        f"federation.local_steps={steps}",
        f"algo.num_perturbations={dirs}",
        f"federation.rounds={rounds}",
        "optim.batch_size=2",
    )
    records: list[dict] = []
    sim.run(records.append)
    kp = steps * dirs
    assert [r["paper_bytes_hiso"] for r in records] == [0] + [8 * kp] * rounds
    assert [r["paper_bytes_decomfl"] for r in records] == [0] + [12 * kp] * rounds
    assert [r["cumulative_paper_bytes_hiso"] for r in records] == [8 * kp * r for r in range(9)]
    assert [r["cumulative_paper_bytes_decomfl"] for r in records] == [12 * kp * r for r in range(9)]
    # the all-clients scalar total is another figure here: 2 clients, plus catch-up records
    _, _, all_scalars = expected_bytes(sim.cfg.seed, rounds, 6, 2, steps, dirs)
    assert records[-1]["cumulative_scalar_bytes_all_clients"] == all_scalars > 2 * 8 * kp * rounds


def test_papers_units_give_their_tables_figures() -> None:
    """HiSo: 1350 rounds at K=1, P=5 are 52.73 KB of 1024 B; DeComFL: 3000 rounds at P=5 0.18 MB."""
    sim = digits_simulation("algo=hiso", "algo.num_perturbations=5", "federation.rounds=1")
    records: list[dict] = []
    sim.run(records.append)
    assert round(1350 * records[1]["paper_bytes_hiso"] / 1024, 2) == 52.73
    assert round(3000 * records[1]["paper_bytes_decomfl"] / 10**6, 2) == 0.18


def test_papers_conventions_come_from_the_uploaded_message() -> None:
    wire = Wire()
    scalars = np.zeros((3, 7), dtype=np.float32)
    for client in (0, 4):
        wire.downlink(client, RoundRecord(0, (1, 2, 3), scalars))  # catch-up: not counted
        wire.downlink(client, RoundPlan(1, (4, 5, 6)))
        wire.uplink(client, ClientReport(1, scalars))
    figures = wire.close_round()
    assert (figures["paper_bytes_hiso"], figures["paper_bytes_decomfl"]) == (8 * 21, 12 * 21)
    model = ModelPayload((torch.zeros(10, 3), torch.zeros(5)))
    wire.downlink(2, model)
    wire.uplink(2, model)
    figures = wire.close_round()
    assert figures["paper_bytes_hiso"] == figures["paper_bytes_decomfl"] == 2 * 4 * 35
    assert figures["cumulative_paper_bytes_decomfl"] == 12 * 21 + 2 * 4 * 35
    assert wire.close_round()["paper_bytes_hiso"] == 0


def test_fedavg_meters_the_full_model_both_ways() -> None:
    sim = digits_simulation("algo=fedavg", "federation.rounds=3", "optim.batch_size=4")
    records: list[dict] = []
    sim.run(records.append)
    d = sim.num_parameters
    sampled = sim.cfg.federation.clients_per_round
    for r in records[1:]:
        assert r["uplink_bytes"] == r["downlink_bytes"] == sampled * d * 4
        assert r["paper_bytes_hiso"] == r["paper_bytes_decomfl"] == 2 * 4 * d  # one client
    assert records[-1]["cumulative_bytes"] == 3 * sampled * 2 * d * 4
