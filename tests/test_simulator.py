"""Determinism, client data, partitions, FedAvg storage and aggregation, the NaN policy."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from hiso.data.partition import dirichlet_partition, iid_partition
from hiso.federation.clients import SimulatedClient
from hiso.federation.health import NonFiniteLossError
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.tasks import build_task

from configs import CPU, digits_config, digits_simulation

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


def test_dirichlet_shares_spread_as_dirichlet_of_alpha_times_the_prior() -> None:
    """A skewed prior p: a client's share of class c varies across clients as q_c ~ Dir(alpha p)
    does, Var = p_c (1 - p_c) / (alpha + 1). With many clients the balancing barely moves
    examples, so the measured variance is within 30% of that for every class; Dir(alpha C p)
    gives about a quarter of it for every class, and Dir(alpha) ignoring the prior (or
    Dir(alpha / C) per class) a third or less for the rare classes."""
    prior = np.array([0.6, 0.25, 0.1, 0.05])
    clients, size, alpha = 100, 400, 10.0
    labels = np.repeat(np.arange(4), (prior * clients * size).astype(int))
    shares = np.concatenate(
        [
            [np.bincount(labels[s], minlength=4) / size for s in shards]
            for shards in (dirichlet_partition(labels, clients, alpha, seed) for seed in range(4))
        ]
    )
    ratio = shares.var(axis=0) / (prior * (1 - prior) / (alpha + 1))
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio


def test_dirichlet_split_of_unlabelled_task_falls_back_to_iid_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = digits_config("federation.partition=dirichlet")
    model, _ = build_model(cfg.model, CPU, cfg.seed)
    task = build_task(cfg, None)
    monkeypatch.setattr(task, "train_labels", lambda: None)  # as SQuAD: no classes
    with caplog.at_level(logging.WARNING):
        sim = Simulation(cfg, model, task, CPU)
    assert [r.getMessage() for r in caplog.records] == [
        "federation.partition=dirichlet: dataset digits has no class labels, so its training "
        "examples are split IID"
    ]
    iid = iid_partition(task.num_train, cfg.federation.num_clients, cfg.seed)
    assert [c.indices.tolist() for c in sim.clients] == [s.tolist() for s in iid]


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
    assert sim.algorithm.client_update is not None
    server_ptrs = {x.data_ptr() for x in sim.master}
    clients: list[list[torch.Tensor]] = []
    update = sim.algorithm.client_update

    def observed(rnd: int, client: int, batches: list, out: list[torch.Tensor]) -> float:
        assert not server_ptrs & {t.data_ptr() for t in out}
        before = [s.clone() for s in sim.master]
        loss = update(rnd, client, batches, out)
        assert all(torch.equal(a, b) for a, b in zip(before, sim.master, strict=True))
        assert all(p.data.data_ptr() in server_ptrs for p in sim.params)
        clients.append([t.clone() for t in out])
        return loss

    sim.algorithm.client_update = observed
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
    # the rounds applied are exactly the ones not skipped (here the first), and a skipped round
    # leaves the model as it was: the same as a run stopped after the applied rounds
    applied = [r["round"] for r in records if r["round"] > 0 and not r.get("skipped")]
    assert applied and [record.round + 1 for record in sim.algorithm.server.history] == applied
    assert all(torch.isfinite(x).all() for x in sim.master)
    stopped = digits_simulation(*skip, f"federation.rounds={applied[-1]}")
    stopped.run(lambda record: None)
    assert all(torch.equal(a, b) for a, b in zip(sim.master, stopped.master, strict=True))


def test_skipping_stops_after_max_skipped_rounds_in_a_row() -> None:
    sim = digits_simulation("algo=decomfl", "optim.lr=1e30", "nan_policy=skip")
    records: list[dict] = []
    with pytest.raises(NonFiniteLossError, match=r"5 rounds in a row.*max_skipped_rounds=5"):
        sim.run(records.append)
    assert [r.get("skipped") for r in records[-6:]] == [None, 1, 1, 1, 1, 1]
    assert records[-1]["round"] < 12


def test_skipped_round_counters_survive_a_checkpoint() -> None:
    """A run continued from a state saved between skipped rounds stops where the whole run does."""
    skip = ("algo=decomfl", "optim.lr=1e30", "nan_policy=skip", "federation.max_skipped_rounds=4")
    with pytest.raises(NonFiniteLossError) as whole:
        digits_simulation(*skip).run(lambda record: None)
    first = digits_simulation(*skip)
    first.run(lambda record: None, stop=lambda: first.round == 3)
    assert first.health.skipped_rounds == first.health.skipped_in_a_row == 2
    second = digits_simulation(*skip)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    with pytest.raises(NonFiniteLossError) as resumed:
        second.run(lambda record: None)
    assert str(resumed.value) == str(whole.value) and "rounds 2-5" in str(whole.value)


@pytest.mark.parametrize(
    "overrides, decision, reason",
    [
        (("algo.direction_cache=on",), "on", "algo.direction_cache=on"),
        (("algo.direction_cache=off",), "off", "algo.direction_cache=off"),
        (("algo.direction_cache=auto",), "on", "auto: P x d float32 values take 24.02 KiB, within"),
        (("algo=fedavg",), "off", "fedavg is first-order: no directions"),
    ],
)
def test_the_run_reports_its_direction_cache_and_the_memory_it_holds(
    overrides: tuple[str, ...], decision: str, reason: str
) -> None:
    """P = 3 directions of the CNN's 2,050 parameters: 24,600 bytes when cached."""
    sim = digits_simulation("federation.rounds=1", *overrides)
    extras = sim.run(lambda record: None)
    assert extras["direction_cache"] == decision
    assert str(extras["direction_cache_reason"]).startswith(reason)
    assert extras["direction_cache_bytes"] == (3 * 2050 * 4 if decision == "on" else 0)
