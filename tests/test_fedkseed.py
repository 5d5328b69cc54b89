"""FedKSeed and FedKSeed-Pro (Qin et al., ICML 2024): two rounds against the paper's equations,
a replica rebuilt from the wire's bytes alone, catch-up in one pass, Pro's probabilities, the
refused schedule and the metered bytes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hiso.federation.replica import SeedPoolReplica
from hiso.federation.server import sample_clients
from hiso.optim import pool_sums, seed_pool
from hiso.optim.pool_sums import RANGE
from hiso.optim.schedule import LRSchedule
from hiso.optim.seed_pool import PoolRebuild, candidate_seeds
from hiso.optim.zo import ZeroOrderOptimizer, ZOSettings
from hiso.protocol import RoundRecord, SeedPool, SeedReport
from hiso.schema import ConfigError
from hiso.seeding import derive_seed, numpy_generator

from configs import digits_config, digits_simulation

SMALL = ("algo.num_perturbations=1", "federation.local_steps=2", "algo.seed_pool=4")


def direction(seed: int, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """z of a candidate seed: slice i drawn from a generator seeded derive_seed(seed, 0, i)."""
    out = []
    for i, shape in enumerate(shapes):
        gen = torch.Generator().manual_seed(derive_seed(seed, 0, i))
        out.append(torch.randn(shape, generator=gen))
    return out


@pytest.mark.parametrize("algo", ["fedkseed", "fedkseed-pro"])
def test_two_rounds_follow_the_papers_equations(algo: str) -> None:
    """Per sampled client, K = 2 local steps from x_r: step k samples pool index j_k, estimates
    g_k = (f(y + mu z_j) - f(y - mu z_j)) / (2 mu) at its local y and moves y <- y - lr g_k z_j;
    the server adds the mean over clients of each seed's sum of g to A_j, and
    x_{r+1} = x_0 - lr sum_j A_j z_j (Pro: sampled with its probabilities, checked below)."""
    overrides = ("federation.rounds=2", "optim.lr=0.05", "algo.mu=1e-2")
    sim = digits_simulation(f"algo={algo}", *overrides, *SMALL)
    cfg, f = sim.cfg, sim.cfg.federation
    lr, mu, pool = cfg.optim.lr, cfg.algo.mu, candidate_seeds(cfg.seed, cfg.algo.seed_pool)
    clients = copy.deepcopy(sim.clients)
    model = copy.deepcopy(sim.model)
    params = dict(model.named_parameters())
    x = [params[n].detach() for n in sim.names]
    shapes = [t.shape for t in x]
    x0 = [t.clone() for t in x]
    accumulated = np.zeros(len(pool))
    history = [[0.0] for _ in pool]  # Pro: each seed's scalars, starting with 0.0

    def loss_at(point: list[torch.Tensor], batch: list[int]) -> float:
        for p, t in zip(x, point, strict=True):
            p.copy_(t)
        with torch.no_grad():
            return float(sim.task.loss(model, sim.task.batch(batch, sim.device)).mean())

    start = [t.clone() for t in x0]
    for rnd in range(f.rounds):
        means = np.array([np.mean(np.abs(np.clip(h, -1000, 1000))) for h in history])
        scaled = (means - means.min()) / (means.max() + 1e-10 - means.min())
        probabilities = np.exp(scaled) / np.exp(scaled).sum()
        delta = np.zeros(len(pool))
        ids = sample_clients(cfg.seed, rnd, f.num_clients, f.clients_per_round)
        for c in ids:
            gen = numpy_generator(cfg.seed, "fedkseed-sampling", rnd, c)
            if algo == "fedkseed":
                picks = gen.integers(0, len(pool), size=f.local_steps)
            else:
                p = probabilities.astype(np.float32).astype(np.float64)
                picks = gen.choice(len(pool), size=f.local_steps, p=p / p.sum())
            y = [t.clone() for t in start]
            for j in picks:
                batch = clients[c].next_batch(cfg.optim.batch_size)
                z = direction(pool[j], shapes)
                plus = loss_at([a + mu * b for a, b in zip(y, z, strict=True)], batch)
                minus = loss_at([a - mu * b for a, b in zip(y, z, strict=True)], batch)
                g = (plus - minus) / (2 * mu)
                y = [a - lr * g * b for a, b in zip(y, z, strict=True)]
                delta[j] += g
                history[j].append(g)
        accumulated += delta / len(ids)
        start = [t.clone() for t in x0]
        for j in np.flatnonzero(accumulated):
            start = [
                a - lr * accumulated[j] * b
                for a, b in zip(start, direction(pool[j], shapes), strict=True)
            ]
    sim.run(lambda record: None)
    np.testing.assert_allclose(sim.algorithm.accumulated, accumulated, rtol=2e-3, atol=1e-4)
    assert np.count_nonzero(accumulated) >= 2
    # the moves agree to float32 rounding of the losses (the simulator batches its forwards)
    moves = [(a - a0, b - a0) for a, b, a0 in zip(sim.master, start, x0, strict=True)]
    assert max(float(b.abs().max()) for _, b in moves) > 1e-3
    for mine, theirs in moves:
        torch.testing.assert_close(mine, theirs, rtol=1e-3, atol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(sim.master, x0, strict=True))


@pytest.fixture(params=["pool-matrix", "integer-sums"])
def rebuild_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways every party rebuilds: the digits pool as matrices (its size's way), and the
    integer sums a language model's pool takes (chosen here by a zero matrix budget)."""
    if request.param == "integer-sums":
        monkeypatch.setattr(seed_pool, "POOL_MATRIX_BYTES", 0)
    return request.param


@pytest.mark.parametrize("algo", ["fedkseed", "fedkseed-pro"])
def test_a_replica_rebuilt_from_the_wire_bytes_alone_holds_the_servers_model(
    algo: str, rebuild_path: str
) -> None:
    """Each client's replica sees only x_0, the pool's seeds and the bytes addressed to it; the
    model it rebuilds at the start of each round it is sampled in equals, bit for bit, the
    server's model after the rounds before, including after rounds it missed (with integer sums:
    the server updated its sums every round, the replica only in the rounds it was sampled)."""
    sim = digits_simulation(f"algo={algo}", "federation.rounds=6", *SMALL)
    assert sim.algorithm.rebuild.matrix == (rebuild_path == "pool-matrix")
    seeds = candidate_seeds(sim.cfg.seed, sim.cfg.algo.seed_pool)
    settings = type(sim.algorithm).settings(sim.cfg)
    replicas = [SeedPoolReplica(c, settings, sim.master, seeds) for c in range(len(sim.clients))]
    for replica in replicas:
        sim.wire.listeners.append(replica.receive)
    server = {0: [x.clone() for x in sim.master]}
    sim.run(
        lambda record: None,
        on_round=lambda: server.__setitem__(sim.round, [x.clone() for x in sim.master]),
    )
    missed = 0
    for replica in replicas:
        rounds = [rnd for rnd, _ in replica.rebuilt]
        missed += sum(b - a > 1 for a, b in zip([-1, *rounds], rounds, strict=False))
        for rnd, params in replica.rebuilt:
            for mine, theirs in zip(params, server[rnd], strict=True):
                assert torch.equal(mine, theirs), (replica.client, rnd)
    assert missed > 0
    assert not all(torch.equal(a, b) for a, b in zip(server[6], server[0], strict=True))


@pytest.mark.parametrize("matrix_bytes", [1 << 30, 0], ids=["pool-matrix", "regenerated"])
def test_catch_up_in_one_pass_equals_the_rounds_applied_one_by_one(matrix_bytes: int) -> None:
    """x_0 - lr sum_j (sum_r delta_j^r) z_j in one pass equals applying each round's
    x <- x - lr sum_j delta_j^r z_j in turn, to float32 rounding only (the one pass adds the
    rounds' scalars before multiplying by z, so its sums are reassociated: not bit for bit);
    both ways of rebuilding (the pool's directions kept as a matrix, or regenerated)."""
    shapes = [torch.Size([5]), torch.Size([2, 3])]
    x0 = [torch.randn(s, generator=torch.Generator().manual_seed(7)) for s in shapes]
    seeds = candidate_seeds(3, 6)
    settings = ZOSettings(num_perturbations=1, mu=1e-3, lr=LRSchedule(0.1), central=True)
    zo = ZeroOrderOptimizer(settings, x0)
    rounds = [np.zeros(6, dtype=np.float32) for _ in range(4)]
    for r, delta in enumerate(rounds):
        delta[[r, (r + 2) % 6, 5]] = [0.5 + r, -1.25, 0.75 * r]
    applied = [x.clone() for x in x0]
    for r, delta in enumerate(rounds):
        touched = np.flatnonzero(delta)
        record = RoundRecord(r, tuple(seeds[j] for j in touched), delta[touched].reshape(-1, 1))
        zo.apply_record(applied, zo.init_state(applied), record)
    rebuild = PoolRebuild(zo, x0, seeds, matrix_bytes)
    assert rebuild.matrix == (matrix_bytes > 0)
    one_pass = [torch.empty_like(x) for x in x0]
    rebuild(one_pass, np.sum(rounds, axis=0, dtype=np.float32))
    for a, b in zip(one_pass, applied, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # by hand: x_0 - lr sum_j A_j z_j
    total = np.sum(rounds, axis=0)
    for i, x in enumerate(x0):
        expected = x.clone()
        for j in np.flatnonzero(total):
            expected -= 0.1 * float(total[j]) * direction(seeds[j], shapes)[i]
        torch.testing.assert_close(one_pass[i], expected, rtol=1e-6, atol=1e-6)
    # an all-zero pool gives x_0 itself
    rebuild(one_pass, np.zeros(6, dtype=np.float32))
    assert all(torch.equal(a, b) for a, b in zip(one_pass, x0, strict=True))


@pytest.mark.parametrize("chunk", [pool_sums.CHUNK, 7])
def test_integer_sums_updated_round_by_round_equal_one_fresh_pass_bit_for_bit(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The integer sums hold the same bits however A got to its value: updated every round
    (seeds that change, come back to zero, stay), or in one pass from zero, as a client catching
    up or a resumed run does. Rounding each term A_j z_j on its own is what makes the sum exact;
    summing the change (A'_j - A_j) z_j instead, or in floating point, differs in the last bits.
    A chunk of 7 values crosses the tensors' ends mid-chunk."""
    monkeypatch.setattr(pool_sums, "CHUNK", chunk)
    shapes = [torch.Size([300]), torch.Size([20, 30])]
    x0 = [torch.randn(s, generator=torch.Generator().manual_seed(5)) for s in shapes]
    seeds = candidate_seeds(11, 8)
    settings = ZOSettings(num_perturbations=1, mu=1e-3, lr=LRSchedule(0.01), central=True)
    zo = ZeroOrderOptimizer(settings, x0)
    stepwise = PoolRebuild(zo, x0, seeds, matrix_bytes=0)
    rng = np.random.default_rng(0)
    accumulated = np.zeros(8, dtype=np.float64)
    current = [torch.empty_like(x) for x in x0]
    for r in range(12):
        touched = rng.choice(8, size=2, replace=False)
        accumulated[touched] += rng.normal(size=2) * 3.7
        if r == 6:
            accumulated[touched[0]] = 0.0  # back to zero
        a = accumulated.astype(np.float32)
        stepwise(current, a)
        fresh = PoolRebuild(zo, x0, seeds, matrix_bytes=0)
        once = [torch.empty_like(x) for x in x0]
        fresh(once, a)
        for mine, theirs in zip(current, once, strict=True):
            assert torch.equal(mine, theirs), r
    # and they are x_0 - lr sum_j A_j z_j
    for i, x in enumerate(x0):
        expected = x.double().clone()
        for j in np.flatnonzero(a):
            expected -= 0.01 * float(a[j]) * direction(seeds[j], shapes)[i].double()
        torch.testing.assert_close(current[i], expected.float(), rtol=1e-6, atol=1e-7)


def test_integer_sums_out_of_range_give_nan_and_recover_exactly() -> None:
    """sum_j |A_j| max|z_j| beyond 2^29 leaves int64: the model is NaN (diverged), and when A
    comes back the sums still hold exactly what a fresh pass computes."""
    x0 = [torch.zeros(50)]
    seeds = candidate_seeds(2, 3)
    zo = ZeroOrderOptimizer(
        ZOSettings(num_perturbations=1, mu=1e-3, lr=LRSchedule(1e-3), central=True), x0
    )
    rebuild = PoolRebuild(zo, x0, seeds, matrix_bytes=0)
    params = [torch.empty(50)]
    rebuild(params, np.array([1.5, 0.0, RANGE], dtype=np.float32))
    assert torch.isnan(params[0]).all()
    back = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    rebuild(params, back)
    fresh, once = PoolRebuild(zo, x0, seeds, matrix_bytes=0), [torch.empty(50)]
    fresh(once, back)
    assert torch.isfinite(params[0]).all() and torch.equal(params[0], once[0])


def test_pro_probabilities_match_a_hand_computation() -> None:
    """Histories [0, 2, -4], [0], [0, 3000 -> clipped to 1000], [0, 1]: mean |g| = 2, 0, 500,
    0.5; min-max normalised (v - 0) / (500 + 1e-10); softmax. Sampling follows them."""
    sim = digits_simulation("algo=fedkseed-pro", "federation.rounds=0", *SMALL)
    pro = sim.algorithm
    uniform = pro.sampling_probabilities()
    np.testing.assert_allclose(uniform, np.full(4, 0.25))
    reports = [
        SeedReport(0, np.array([0, 0]), np.array([2.0, -4.0], dtype=np.float32)),
        SeedReport(0, np.array([2, 3]), np.array([3000.0, 1.0], dtype=np.float32)),
    ]
    pro.commit(reports)
    v = np.array([2.0, 0.0, 500.0, 0.5]) / (500.0 + 1e-10)
    expected = np.exp(v) / np.exp(v).sum()
    probabilities = pro.sampling_probabilities()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    picks = pro.sample_indices(0, 0, probabilities.astype(np.float32), 40000)
    np.testing.assert_allclose(np.bincount(picks, minlength=4) / 40000, expected, atol=0.01)
    # the accumulated scalars: each client's per-seed sums, averaged over the two clients
    np.testing.assert_allclose(pro.accumulated, [-1.0, 0.0, 1500.0, 0.5])


@pytest.mark.parametrize("algo", ["fedkseed", "fedkseed-pro"])
def test_a_learning_rate_schedule_is_refused(algo: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"optim.lr_schedule='cosine' is not allowed: constant with algo={algo}"
    ):
        digits_config(f"algo={algo}", "optim.lr_schedule=cosine", *SMALL)


def test_the_wire_meters_the_pool_and_the_pairs() -> None:
    """Down: 9-byte header + 4K per sampled client (+ 4K probabilities for Pro); up: 8-byte
    header + 8 per step; the paper's figure for one client: 4K + 8 * steps."""
    records: list[dict] = []
    for algo, probability_bytes in (("fedkseed", 0), ("fedkseed-pro", 16)):
        records.clear()
        sim = digits_simulation(f"algo={algo}", "federation.rounds=2", *SMALL)
        sim.run(records.append)
        per_round = sim.cfg.federation.clients_per_round
        for r in records[1:]:
            assert r["downlink_bytes"] == per_round * (9 + 16 + probability_bytes)
            assert r["uplink_bytes"] == per_round * (8 + 8 * 2)
            assert r["paper_bytes_fedkseed"] == 16 + 8 * 2
            assert r["paper_bytes_hiso"] == r["paper_bytes_decomfl"] == 0
        pool = SeedPool(3, np.arange(4, dtype=np.float32), None)
        assert SeedPool.decode(pool.encode()).accumulated.tolist() == [0, 1, 2, 3]
