"""K >= 2 local steps against an independent computation from ../shared/SPEC.md's equations: a
DeComFL/HiSo client estimates step k at its own model after steps 0..k-1 (sections 2, 3), HiSo's
H follows H <- beta H + (1 - beta)(dx^2 + eps) with eps visible, and a FedAvg/FedAdam client takes
K SGD steps before the server averages (section 5).

Two clients, both sampled, each step's batch its whole shard: the objective of client c is its
mean loss over its shard, f_c, evaluated here with the task's loss on the model (the objective,
not the rule under test); directions are regenerated from the round's seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from hiso.federation.server import Server
from hiso.optim.directions import DirectionStream

from configs import digits_simulation

K = 3
P = 2
LR = {"decomfl": 0.05, "hiso": 0.05, "fedavg": 0.5, "fedadam": 0.01}
MU = 1e-2
EPS = 0.5  # large enough that dropping it from H's rule shows
BETA = 0.9
Tensors = list[torch.Tensor]


def simulation(algo: str, *extra: str):
    common = (
        f"algo={algo}",
        "federation.num_clients=2",
        "federation.clients_per_round=2",
        "federation.partition=iid",
        f"federation.local_steps={K}",
        "optim.momentum=0.0",
        "optim.lr_schedule=constant",
        f"optim.lr={LR[algo]!r}",
    )
    zo = (f"algo.num_perturbations={P}", f"algo.mu={MU!r}", "algo.difference=forward")
    first = digits_simulation(*common, *(zo if algo in ("decomfl", "hiso") else ()), *extra)
    # each local step's batch is the client's whole shard (in a shuffled order)
    shard = len(first.clients[0].indices)
    assert {len(c.indices) for c in first.clients} == {shard}
    return digits_simulation(
        *common,
        *(zo if algo in ("decomfl", "hiso") else ()),
        *extra,
        f"optim.batch_size={shard}",
    )


def objective(sim, client: int) -> Callable[[Tensors], torch.Tensor]:
    """f_c(x): client c's mean loss over its shard at parameters x (autograd through x)."""
    indices = [int(i) for i in sim.clients[client].indices]
    batch = sim.task.batch(indices, torch.device("cpu"))

    def f(x: Tensors) -> torch.Tensor:
        saved = [p.data for p in sim.params]
        try:
            for p, t in zip(sim.params, x, strict=True):
                p.data = t
            return sim.task.loss(sim.model, batch).double().mean()
        finally:
            for p, t in zip(sim.params, saved, strict=True):
                p.data = t

    return f


def directions(sim, seed: int) -> list[Tensors]:
    shapes = [p.shape for p in sim.params]
    stream = DirectionStream(shapes, torch.device("cpu"), range(len(shapes)))
    return [[stream.gaussian(seed, p, i).clone() for i in range(len(shapes))] for p in range(P)]


def step(x: Tensors, lr: float, scalars: Sequence[float], z: list[Tensors]) -> Tensors:
    """x - lr (1/P) sum_p g_p z_p."""
    dx = [
        sum(float(g) * zp[i] for g, zp in zip(scalars, z, strict=True)) / P for i in range(len(x))
    ]
    return [xi - lr * d for xi, d in zip(x, dx, strict=True)]


def zo_round(sim, algo: str, rnd: int, x0: Tensors, h: Tensors | None) -> tuple[Tensors, Tensors]:
    """SPEC sections 2-3 for one round: each client's K steps on its own trajectory, the averaged
    scalars applied from x0, and for HiSo H's update from the last step's dx."""
    seeds = Server(sim.cfg.seed, 2, K).plan(rnd).seeds
    u = [directions(sim, s) for s in seeds]
    scale = [torch.ones_like(t) for t in x0] if h is None else [t.rsqrt() for t in h]
    z = [[[ui * si for ui, si in zip(up, scale, strict=True)] for up in uk] for uk in u]
    per_client = []
    with torch.no_grad():
        for c in (0, 1):
            f, x, scalars = objective(sim, c), [t.clone() for t in x0], []
            for k in range(K):
                f0 = f(x)
                g = [
                    float((f([a + MU * b for a, b in zip(x, zp, strict=True)]) - f0) / MU)
                    for zp in z[k]
                ]
                scalars.append(torch.tensor(g, dtype=torch.float32))
                x = step(x, LR[algo], g, z[k])
            per_client.append(torch.stack(scalars))
        mean = (per_client[0].double() + per_client[1].double()) / 2
        x = [t.clone() for t in x0]
        for k in range(K):
            x = step(x, LR[algo], mean[k].tolist(), z[k])
        if h is None:
            return x, []
        dx = [
            t / LR[algo]
            for t in step([torch.zeros_like(t) for t in x0], -LR[algo], mean[-1].tolist(), z[-1])
        ]
        return x, [BETA * hi + (1 - BETA) * (d * d + EPS) for hi, d in zip(h, dx, strict=True)]


def state(sim) -> tuple[Tensors, Tensors]:
    tensors = sim.replica_tensors()
    params = [tensors[n].clone() for n in sim.names]
    curvature = [
        tensors[f"curvature of {n}"].clone() for n in sim.names if f"curvature of {n}" in tensors
    ]
    return params, curvature


def close(a: Tensors, b: Tensors) -> float:
    """Largest absolute difference relative to the largest entry of b."""
    scale = max(float(t.abs().max()) for t in b)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True)) / scale


@pytest.mark.parametrize("algo", ["decomfl", "hiso"])
def test_zo_clients_step_on_their_own_trajectory(algo: str) -> None:
    extra = (f"algo.beta={BETA!r}", f"algo.eps={EPS!r}") if algo == "hiso" else ()
    sim = simulation(algo, *extra)
    x, h = state(sim)
    h_or_none = h if algo == "hiso" else None
    for rnd in range(2):  # HiSo's second round draws its directions with H_1
        start = x
        x, h_new = zo_round(sim, algo, rnd, start, h_or_none)
        sim.run_round(rnd)
        got_x, got_h = state(sim)
        moved = close(x, start)
        assert close(got_x, x) < 1e-4 < moved, (rnd, close(got_x, x), moved)
        if algo == "hiso":
            assert close(got_h, h_new) < 1e-5, (rnd, close(got_h, h_new))
            h_or_none = h_new
        x = got_x


def sgd_round(sim, algo: str, x0: Tensors) -> Tensors:
    """SPEC section 5: each client's K SGD steps from x0, averaged; FedAdam's server step from
    m = v = 0: x0 + lr m / sqrt(v + tau), m = (1 - b1) delta, v = (1 - b2) delta^2."""
    clients = []
    batch = [
        sim.task.batch([int(i) for i in sim.clients[c].indices], torch.device("cpu"))
        for c in (0, 1)
    ]
    for c in (0, 1):
        x = [t.clone() for t in x0]
        for _ in range(K):
            # the gradient at x: x placed in the parameters' storage, autograd to the parameters
            saved = [p.data for p in sim.params]
            for p, t in zip(sim.params, x, strict=True):
                p.data = t.clone()
            loss = sim.task.loss(sim.model, batch[c]).mean()
            grads = torch.autograd.grad(loss, sim.params)
            for p, t in zip(sim.params, saved, strict=True):
                p.data = t
            x = [(t - LR[algo] * g).detach() for t, g in zip(x, grads, strict=True)]
        clients.append(x)
    mean = [(a + b) / 2 for a, b in zip(*clients, strict=True)]
    if algo == "fedavg":
        return mean
    delta = [m - x for m, x in zip(mean, x0, strict=True)]
    a = sim.cfg.algo
    return [
        x
        + LR[algo]
        * ((1 - a.server_beta1) * d)
        / torch.sqrt((1 - a.server_beta2) * d * d + a.server_tau)
        for x, d in zip(x0, delta, strict=True)
    ]


@pytest.mark.parametrize("algo", ["fedavg", "fedadam"])
def test_first_order_clients_take_k_sgd_steps(algo: str) -> None:
    sim = simulation(algo)
    start, _ = state(sim)
    expected = sgd_round(sim, algo, start)
    sim.run_round(0)
    got, _ = state(sim)
    moved = close(expected, start)
    assert close(got, expected) < 1e-4 < moved, (close(got, expected), moved)
