"""The papers' baselines against hand computations: the adaptive server steps (FedAdam, FedYogi,
FedAdagrad), FedZO's averaged update, MeZO's step, their bytes on the wire, and each new
algorithm through the real `hiso-run`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import hiso_run

from hiso.config import compose_config
from hiso.federation.clients import SimulatedClient
from hiso.federation.server import round_seeds
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.optim.directions import DirectionStream
from hiso.optim.fedzo import client_seeds
from hiso.optim.schedule import LRSchedule
from hiso.optim.server import AdaptiveStep, MeanStep
from hiso.protocol import ModelPayload
from hiso.schema import ConfigError
from hiso.tracking.records import read_jsonl

from configs import CPU, digits_config, digits_simulation

B1, B2, TAU = 0.9, 0.999, 1e-8


def hand_adaptive(rule: str, lr: float, deltas: list[list[float]], x: list[float]) -> list[float]:
    """x after one adaptive server step per delta, element by element in float64."""
    m, v, x = [0.0] * len(x), [0.0] * len(x), list(x)
    for delta in deltas:
        for i, d in enumerate(delta):
            m[i] = B1 * m[i] + (1 - B1) * d
            if rule == "adam":
                v[i] = B2 * v[i] + (1 - B2) * d * d
            elif rule == "yogi":
                v[i] = v[i] - (1 - B2) * d * d * float(np.sign(v[i] - d * d))
            else:
                v[i] = v[i] + d * d
            x[i] = x[i] + lr * m[i] / math.sqrt(v[i] + TAU)
    return x


def test_adaptive_server_steps_match_two_rounds_by_hand() -> None:
    """Round 2's deltas are small in some coordinates, so Yogi's sign(v - delta^2) is +1 there
    and -1 elsewhere; 1e-3 makes v comparable to tau (tau inside the root, not added after)."""
    x0, lr = [0.5, -1.0, 2.0], 0.1
    deltas = [[1.0, -2.0, 1e-3], [0.01, 3.0, -1e-4]]
    expected = {
        # written out for Adam: m1 = 0.1 d1, v1 = 0.001 d1^2, m2 = 0.9 m1 + 0.1 d2, ...
        "adam": [
            x0[0]
            + lr * 0.1 / math.sqrt(0.001 + TAU)
            + lr * (0.09 + 0.001) / math.sqrt(0.000999 + 0.001 * 1e-4 + TAU),
            x0[1]
            - lr * 0.2 / math.sqrt(0.004 + TAU)
            + lr * (-0.18 + 0.3) / math.sqrt(0.003996 + 0.009 + TAU),
            x0[2]
            + lr * 1e-4 / math.sqrt(1e-9 + TAU)
            + lr * (9e-5 - 1e-5) / math.sqrt(0.999e-9 + 1e-11 + TAU),
        ],
    }
    for rule in ("adam", "yogi", "adagrad"):
        x = [torch.tensor(x0, dtype=torch.float32)]
        step = AdaptiveStep(rule, LRSchedule(lr, "constant", 10), x, B1, B2, TAU)
        for rnd, delta in enumerate(deltas):
            step.step(x, [torch.tensor(delta, dtype=torch.float32)], rnd)
        hand = hand_adaptive(rule, lr, deltas, x0)
        if rule in expected:
            np.testing.assert_allclose(hand, expected[rule], rtol=1e-12)
        np.testing.assert_allclose(x[0].double().numpy(), hand, rtol=1e-6, err_msg=rule)
    # Yogi differs from Adam exactly where sign(v - delta^2) = +1 in round 2 (coordinates 0, 2)
    yogi, adam = hand_adaptive("yogi", lr, deltas, x0), hand_adaptive("adam", lr, deltas, x0)
    assert yogi[1] == pytest.approx(adam[1], rel=1e-3) and yogi[0] != pytest.approx(adam[0])


def test_server_optimiser_state_round_trips() -> None:
    x = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    step = AdaptiveStep("yogi", LRSchedule(0.1, "constant", 10), x)
    step.step(x, [torch.tensor([0.5, -0.5]), torch.tensor([[2.0]])], 0)
    fresh = AdaptiveStep("yogi", LRSchedule(0.1, "constant", 10), x)
    fresh.load_state_dict(step.state_dict())
    y = [t.clone() for t in x]
    for opt, point in ((step, x), (fresh, y)):
        opt.step(point, [torch.tensor([0.1, 0.2]), torch.tensor([[-1.0]])], 1)
    assert all(torch.equal(a, b) for a, b in zip(x, y, strict=True))
    assert MeanStep().state_dict() == {}


def twin_client(sim: Simulation, client: int = 0) -> SimulatedClient:
    """A fresh copy of a client of `sim` that draws the same batches."""
    return SimulatedClient(client, sim.clients[client].indices, sim.cfg.seed)


def batch_loss(sim: Simulation, model: torch.nn.Module, indices: list[int]) -> torch.Tensor:
    return sim.task.loss(model, sim.task.batch(indices, CPU)).mean()


@pytest.mark.parametrize("rule", ["adam", "yogi", "adagrad"])
def test_adaptive_rounds_on_the_cnn_match_a_hand_computation(rule: str) -> None:
    """One client, one SGD step per round, two rounds: the client's delta is -lr * gradient
    (computed here with autograd on a separate model), the server step is the hand formula with
    the server learning rate defaulting to the client's."""
    lr = 0.05
    sim = digits_simulation(
        f"algo=fed{rule}",
        "federation.num_clients=1",
        "federation.clients_per_round=1",
        "federation.rounds=2",
        f"optim.lr={lr}",
    )
    assert sim.cfg.algo.server_lr is None
    reference, _ = build_model(sim.cfg.model, CPU, sim.cfg.seed)
    params = list(reference.parameters())
    client = twin_client(sim)
    x = [p.detach().double().flatten() for p in params]
    x0 = [t.clone() for t in sim.master]
    m = [torch.zeros_like(t) for t in x]
    v = [torch.zeros_like(t) for t in x]
    for _ in range(2):
        loss = batch_loss(sim, reference, client.next_batch(sim.cfg.optim.batch_size))
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                d = (p - lr * g).double().flatten() - p.double().flatten()
                m[i] = B1 * m[i] + (1 - B1) * d
                if rule == "adam":
                    v[i] = B2 * v[i] + (1 - B2) * d * d
                elif rule == "yogi":
                    v[i] = v[i] - (1 - B2) * d * d * torch.sign(v[i] - d * d)
                else:
                    v[i] = v[i] + d * d
                x[i] = x[i] + lr * m[i] / torch.sqrt(v[i] + TAU)
                p.copy_(x[i].view_as(p))
    sim.run(lambda record: None)
    for got, want in zip(sim.master, x, strict=True):
        torch.testing.assert_close(got.double().flatten(), want, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(sim.master, x0, strict=True))


def zo_trajectory(
    sim: Simulation, start: list[torch.Tensor], batches: list[list[int]], seeds: tuple[int, ...]
) -> list[torch.Tensor]:
    """A client's K forward-difference ZO-SGD steps written out: y <- y - lr mean_p(g_p z_p),
    g_p = (f(y + mu z_p) - f(y)) / mu, z_p drawn from seed k, direction p, parameter i."""
    s, model = sim.cfg, sim.model
    mu, lr, num_dirs = s.algo.mu, s.optim.lr, s.algo.num_perturbations
    directions = DirectionStream([x.shape for x in start], CPU, range(len(start)))
    y = [x.clone() for x in start]

    def loss_at(point: list[torch.Tensor], indices: list[int]) -> float:
        saved = [p.data for p in sim.params]
        for p, t in zip(sim.params, point, strict=True):
            p.data = t
        with torch.no_grad():
            value = float(sim.task.loss(model, sim.task.batch(indices, CPU)).double().mean())
        for p, t in zip(sim.params, saved, strict=True):
            p.data = t
        return value

    for k, seed in enumerate(seeds):
        f0 = loss_at(y, batches[k])
        step = [torch.zeros_like(t) for t in y]
        for p in range(num_dirs):
            z = [directions.gaussian(seed, p, i).clone() for i in range(len(y))]
            perturbed = [torch.add(a, b, alpha=mu) for a, b in zip(y, z, strict=True)]
            g = np.float32((loss_at(perturbed, batches[k]) - f0) / mu)
            for acc, zi in zip(step, z, strict=True):
                acc.add_(zi, alpha=float(g))
        y = [torch.add(a, b, alpha=-lr / num_dirs) for a, b in zip(y, step, strict=True)]
    return y


def test_fedzo_round_is_the_mean_of_the_clients_own_zo_trajectories() -> None:
    sim = digits_simulation(
        "algo=fedzo",
        "federation.num_clients=3",
        "federation.clients_per_round=3",
        "federation.local_steps=2",
        "federation.rounds=1",
        "algo.num_perturbations=2",
        "optim.lr=0.01",
    )
    x0 = [x.clone() for x in sim.master]
    seeds = round_seeds(sim.cfg.seed, 0, sim.cfg.federation.local_steps)
    trajectories = []
    for c in range(3):
        twin = twin_client(sim, c)
        batches = [twin.next_batch(sim.cfg.optim.batch_size) for _ in seeds]
        trajectories.append(zo_trajectory(sim, x0, batches, client_seeds(seeds, c)))
    assert len({client_seeds(seeds, c) for c in range(3)}) == 3  # each client its own directions
    sim.run(lambda record: None)
    for i, x in enumerate(sim.master):
        mean = torch.stack([t[i] for t in trajectories]).mean(dim=0)
        torch.testing.assert_close(x, mean, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(trajectories[0][i], trajectories[1][i])


def test_mezo_step_matches_a_hand_central_difference() -> None:
    """One client with all the data, one direction, central difference: x1 = x0 - lr g z with
    g = (f(x0 + mu z) - f(x0 - mu z)) / (2 mu)."""
    sim = digits_simulation(
        "algo=mezo", "algo.num_perturbations=1", "federation.rounds=1", "optim.lr=0.01"
    )
    cfg = sim.cfg
    assert (cfg.federation.num_clients, cfg.algo.num_perturbations) == (1, 1)
    assert cfg.algo.difference == "central" and sim.algorithm.state.curvature is None
    assert len(sim.clients[0].indices) == sim.task.num_train
    x0 = [x.clone() for x in sim.master]
    seed = sim.algorithm.server.plan(0).seeds[0]
    directions = DirectionStream([x.shape for x in x0], CPU, range(len(x0)))
    z = [directions.gaussian(seed, 0, i).clone() for i in range(len(x0))]
    batch = sim.task.batch(twin_client(sim).next_batch(cfg.optim.batch_size), CPU)
    mu, lr = cfg.algo.mu, cfg.optim.lr
    # the two points mirror each other exactly: x0 +- (the float32 step x0 + mu z - x0)
    steps = [torch.add(a, b, alpha=mu) - a for a, b in zip(x0, z, strict=True)]
    f = {}
    for sign in (1, -1):
        for p, a, step in zip(sim.params, x0, steps, strict=True):
            p.data = a + sign * step
        with torch.no_grad():
            f[sign] = float(sim.task.loss(sim.model, batch).double().mean())
    for p, x in zip(sim.params, sim.master, strict=True):
        p.data = x
    g = (f[1] - f[-1]) / (2 * mu)
    sim.run(lambda record: None)
    for x, a, b in zip(sim.master, x0, z, strict=True):
        torch.testing.assert_close(x, a - lr * g * b, rtol=1e-5, atol=1e-7)


def test_mezo_refuses_more_than_one_client() -> None:
    with pytest.raises(ConfigError) as error:
        digits_config("algo=mezo", "federation.num_clients=4")
    assert "federation.num_clients" in str(error.value) and "mezo" in str(error.value)


@pytest.mark.parametrize("algo", ["fedadam", "fedyogi", "fedadagrad", "fedzo"])
def test_full_updates_cost_the_model_both_ways(algo: str) -> None:
    """2 * 4 * d bytes per sampled client per round (6 clients, 2 sampled), as encoded."""
    sim = digits_simulation(
        f"algo={algo}",
        "federation.num_clients=6",
        "federation.clients_per_round=2",
        "federation.rounds=3",
        "federation.local_steps=2",
    )
    records: list[dict] = []
    sim.run(records.append)
    d = sim.num_parameters
    assert len(ModelPayload(tuple(sim.master)).encode()) == 4 * d
    for r in records[1:]:
        assert r["uplink_bytes"] == r["downlink_bytes"] == 2 * 4 * d
        assert r["paper_bytes_hiso"] == r["paper_bytes_decomfl"] == 2 * 4 * d  # one client
    assert records[-1]["cumulative_bytes"] == 3 * 2 * 2 * 4 * d


def test_each_new_algorithm_runs_through_hiso_run(tmp_path: Path) -> None:
    algos = ("fedadam", "fedyogi", "fedadagrad", "fedzo", "mezo")
    sweep = tmp_path / "sweep"
    result = hiso_run(
        "-m",
        "+experiment=digits",
        "federation.rounds=3",
        "federation.eval_every=0",
        "logger=none",
        f"algo={','.join(algos)}",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${algo.name}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for algo in algos:
        rows = read_jsonl(sweep / algo / "metrics.jsonl")
        assert [r["round"] for r in rows] == [0, 1, 2, 3], algo
        assert np.isfinite(rows[-1]["train_loss"]) and "test_accuracy" in rows[-1]
    mezo = compose_config(["+experiment=digits", "algo=mezo"])
    assert mezo.federation.num_clients == mezo.federation.clients_per_round == 1
    assert (mezo.algo.num_perturbations, mezo.algo.difference) == (1, "central")
