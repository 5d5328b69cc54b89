"""Determinism, client data, partitions, FedAvg storage and aggregation, the NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiso.data.partition import dirichlet_partition, iid_partition
from hiso.federation.simulator import NonFiniteLossError, SimulatedClient

from configs import digits_simulation

TIME_KEYS = ("round_time", "wall_time")


def metrics(*overrides: str) -> list[dict]:
    records: list[dict] = []
    digits_simulation(*overrides).run(records.append)
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


@pytest.mark.parametrize("algo", ["hiso", "fedavg"])
def test_same_seed_same_metrics_other_seed_differs(algo: str) -> None:
    common = (f"algo={algo}", "federation.eval_every=4")
    first = metrics(*common)
    assert first == metrics(*common)
    assert first != metrics(*common, "seed=1")


def test_dirichlet_partition_is_balanced_disjoint_and_skewed() -> None:
    labels = np.repeat(np.arange(10), 100)
    shards = dirichlet_partition(labels, 8, 0.5, seed=3)
    assert {len(s) for s in shards} == {125}
    flat = np.concatenate(shards)
    assert len(np.unique(flat)) == len(flat) == 1000

    def dominant_share(parts: list[np.ndarray]) -> float:
        return float(np.mean([np.bincount(labels[s], minlength=10).max() / len(s) for s in parts]))

    assert dominant_share(shards) > 1.5 * dominant_share(iid_partition(1000, 8, seed=3))
    assert [s.tolist() for s in shards] == [
        s.tolist() for s in dirichlet_partition(labels, 8, 0.5, seed=3)
    ]


def test_iid_partition_covers_equal_shards() -> None:
    shards = iid_partition(103, 4, seed=0)
    assert {len(s) for s in shards} == {25}
    assert len(np.unique(np.concatenate(shards))) == 100


def test_client_batches_walk_the_shard_and_reshuffle_each_pass() -> None:
    client = SimulatedClient(0, np.arange(10, 20), run_seed=0)
    first_pass = client.next_batch(4) + client.next_batch(4) + client.next_batch(2)
    assert sorted(first_pass) == list(range(10, 20))
    second_pass = client.next_batch(10)
    assert sorted(second_pass) == list(range(10, 20)) and second_pass != first_pass


def test_fedavg_clients_train_in_their_own_storage_and_the_server_averages_them() -> None:
    sim = digits_simulation("algo=fedavg", "federation.rounds=1", "optim.batch_size=16")
    assert sim.fedavg is not None
    server_ptrs = {x.data_ptr() for x in sim.master}
    clients: list[list[torch.Tensor]] = []
    update = sim.fedavg.client_update

    def observed(rnd, params, server, client, num_steps, batch_loss):  # type: ignore[no-untyped-def]
        assert not server_ptrs & {t.data_ptr() for t in client}
        before = [s.clone() for s in server]
        loss = update(rnd, params, server, client, num_steps, batch_loss)
        assert all(torch.equal(a, b) for a, b in zip(before, server, strict=True))
        assert all(p.data.data_ptr() in server_ptrs for p in params)
        clients.append([t.clone() for t in client])
        return loss

    sim.fedavg.client_update = observed  # type: ignore[method-assign]
    sim.run(lambda record: None)
    assert len(clients) == sim.cfg.federation.clients_per_round
    assert not torch.equal(clients[0][0], clients[1][0])
    for i, x in enumerate(sim.master):
        mean = torch.stack([c[i] for c in clients]).mean(dim=0)
        torch.testing.assert_close(x, mean, rtol=0, atol=1e-7)


def test_non_finite_rounds_stop_or_are_skipped() -> None:
    with pytest.raises(NonFiniteLossError, match="nan_policy=stop"):
        metrics("algo=decomfl", "optim.lr=1e30", "optim.momentum=0.0")
    skip = ("algo=decomfl", "optim.lr=1e30", "nan_policy=skip")
    sim = digits_simulation(*skip, "federation.max_skipped_rounds=12")
    records: list[dict] = []
    extras = sim.run(records.append)
    skipped = [r["round"] for r in records if r.get("skipped")]
    assert skipped and extras["skipped_rounds"] == len(skipped) and records[-1]["round"] == 12
    assert all(torch.isfinite(x).all() for x in sim.master) or not sim.server.history


def test_skipping_stops_after_max_skipped_rounds_in_a_row() -> None:
    sim = digits_simulation("algo=decomfl", "optim.lr=1e30", "nan_policy=skip")
    records: list[dict] = []
    with pytest.raises(NonFiniteLossError, match=r"5 rounds in a row.*max_skipped_rounds=5"):
        sim.run(records.append)
    assert [r.get("skipped") for r in records[-6:]] == [None, 1, 1, 1, 1, 1]
    assert records[-1]["round"] < 12
