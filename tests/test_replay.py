"""Bit-exact catch-up: a replica that sees only x_0 and the encoded messages addressed to one
client ends with the server's model (and HiSo's curvature) after many stale, sampled rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiso.federation.replica import ClientReplica
from hiso.federation.simulator import Simulation

from configs import DEVICES, digits_simulation


def run_with_replicas(sim: Simulation) -> list[ClientReplica]:
    replicas = [
        ClientReplica(c, type(sim.algorithm).settings(sim.cfg), sim.master)
        for c in range(len(sim.clients))
    ]
    for replica in replicas:
        sim.wire.listeners.append(replica.receive)
    sim.run(lambda record: None)
    # bring every client to the final round through the wire, as its next sampling would
    final = sim.cfg.federation.rounds
    for replica in replicas:
        for record in sim.algorithm.server.catch_up(replica.client, final):
            sim.wire.downlink(replica.client, record)
    return replicas


def assert_bitwise_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y), float((x - y).abs().max())


def assert_replicas_hold_the_server_state(sim: Simulation, replicas: list[ClientReplica]) -> None:
    """Every replica's model, and HiSo's curvature, equal the server's bit for bit."""
    for replica in replicas:
        assert_bitwise_equal(replica.params, sim.master)
        if sim.algorithm.state.curvature is not None:
            assert replica.state.curvature is not None
            assert_bitwise_equal(replica.state.curvature, sim.algorithm.state.curvature)


@pytest.mark.parametrize(
    "overrides",
    [
        ("algo=hiso",),
        ("algo=hiso", "algo.direction_cache=off", "federation.concat_clients=false"),
        ("algo=decomfl",),
        ("algo=hiso", "federation.local_steps=3"),
        ("algo=hiso", "algo.curvature_scope=global", "federation.local_steps=2"),
        ("algo=decomfl", "federation.local_steps=3", "optim.momentum=0.0"),
        ("algo=hiso", "algo.difference=forward", "optim.momentum=0.0"),
        ("algo=hiso", "algo.difference=central", "optim.momentum=0.9", "federation.local_steps=2"),
        ("algo=hiso", "algo.curvature_steps=every", "federation.local_steps=3"),
        ("algo=decomfl", "optim.lr_schedule=cosine", "federation.local_steps=2"),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_replica_rebuilds_server_model_bit_for_bit(
    overrides: tuple[str, ...], device: torch.device
) -> None:
    sim = digits_simulation(
        "federation.num_clients=5",
        "federation.clients_per_round=2",
        "federation.rounds=25",
        *overrides,
        device=device,
    )
    assert {x.device.type for x in sim.master} == {device.type}
    x0 = [x.clone() for x in sim.master]
    replicas = run_with_replicas(sim)
    assert not all(torch.equal(x, y) for x, y in zip(x0, sim.master, strict=True))
    stale = [r for r in replicas if len(r.rounds_replayed) > 1]
    assert stale, "the schedule must make some client replay several missed rounds at once"
    assert_replicas_hold_the_server_state(sim, replicas)
    for replica in replicas:
        assert replica.rounds_replayed == list(range(25))
        if sim.algorithm.state.curvature is not None:
            assert not all(
                torch.equal(h, torch.ones_like(h)) for h in sim.algorithm.state.curvature
            )
        if sim.algorithm.state.momentum is not None:
            assert replica.state.momentum is not None
            assert_bitwise_equal(replica.state.momentum, sim.algorithm.state.momentum)


def test_server_forgets_records_every_client_has_replayed() -> None:
    sim = digits_simulation("federation.num_clients=3", "federation.clients_per_round=3")
    sim.run(lambda record: None)
    # all clients sampled every round: each holds x_{R-1}, so only the last record is kept
    assert [r.round for r in sim.algorithm.server.history] == [sim.cfg.federation.rounds - 1]


@pytest.mark.parametrize("device", DEVICES)
def test_hiso_with_beta_one_is_decomfl_exactly(device: torch.device) -> None:
    common = (
        "algo.difference=forward",
        "federation.local_steps=2",
        "optim.momentum=0.9",
        "optim.lr=1e-3",
    )
    hiso = digits_simulation("algo=hiso", "algo.beta=1.0", *common, device=device)
    decomfl = digits_simulation("algo=decomfl", *common, device=device)
    losses_h: list[float] = []
    losses_d: list[float] = []
    hiso.run(lambda r: losses_h.append(r.get("train_loss", np.nan)))
    decomfl.run(lambda r: losses_d.append(r.get("train_loss", np.nan)))
    np.testing.assert_array_equal(losses_h, losses_d)
    assert_bitwise_equal(hiso.master, decomfl.master)
    assert hiso.algorithm.state.curvature is not None
    assert all(torch.equal(h, torch.ones_like(h)) for h in hiso.algorithm.state.curvature)


@pytest.mark.parametrize("device", DEVICES)
def test_optimisations_leave_the_trajectory_unchanged(device: torch.device) -> None:
    """The direction cache changes where u comes from, not its bits: identical models. One forward
    per client instead of a concatenated one changes only the batch shape of the convolutions,
    so losses agree to float32 rounding (on a GPU, to TF32's: cuDNN's default for convolutions,
    whose kernels differ by batch shape)."""
    common = ("algo=hiso", "federation.local_steps=2", "federation.rounds=8")
    plain = digits_simulation(
        *common, "algo.direction_cache=off", "federation.concat_clients=false", device=device
    )
    cached = digits_simulation(
        *common, "algo.direction_cache=on", "federation.concat_clients=false", device=device
    )
    joint = digits_simulation(
        *common, "algo.direction_cache=on", "federation.concat_clients=true", device=device
    )
    rtol = 1e-5 if device.type == "cpu" else 2e-3
    assert plain.algorithm.zo is not None and plain.algorithm.zo._cache is None
    assert cached.algorithm.zo is not None and cached.algorithm.zo._cache is not None
    losses: dict[str, list[float]] = {"plain": [], "cached": [], "joint": []}
    plain.run(lambda r: losses["plain"].append(r.get("train_loss", 0.0)))
    cached.run(lambda r: losses["cached"].append(r.get("train_loss", 0.0)))
    joint.run(lambda r: losses["joint"].append(r.get("train_loss", 0.0)))
    assert losses["plain"] == losses["cached"]
    assert_bitwise_equal(plain.master, cached.master)
    np.testing.assert_allclose(losses["joint"], losses["plain"], rtol=rtol)
    for a, b in zip(joint.master, plain.master, strict=True):
        torch.testing.assert_close(a, b, rtol=10 * rtol, atol=1e-5)


@pytest.mark.parametrize("cache", ["on", "off"])
def test_direction_threads_change_no_bit(cache: str) -> None:
    """Each thread draws its own parameters' slices from their own seeds: same bits as one."""
    common = (
        "algo=hiso",
        "federation.local_steps=2",
        "federation.rounds=6",
        "optim.momentum=0.9",
        f"algo.direction_cache={cache}",
    )
    one = digits_simulation(*common, "algo.direction_threads=1")
    three = digits_simulation(*common, "algo.direction_threads=3")
    assert one.algorithm.zo is not None and three.algorithm.zo is not None
    assert [len(s.indices) for s in one.algorithm.zo.shares] == [len(one.master)]
    assert len(three.algorithm.zo.shares) == 3
    losses: dict[str, list[float]] = {"one": [], "three": []}
    one.run(lambda r: losses["one"].append(r.get("train_loss", 0.0)))
    three.run(lambda r: losses["three"].append(r.get("train_loss", 0.0)))
    assert losses["one"] == losses["three"]
    assert_bitwise_equal(one.master, three.master)
    assert one.algorithm.state.curvature is not None and three.algorithm.state.curvature is not None
    assert_bitwise_equal(one.algorithm.state.curvature, three.algorithm.state.curvature)
