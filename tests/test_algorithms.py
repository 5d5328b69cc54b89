"""Algorithms as components: every algo group option registers through the interface and runs,
the sequential client option against an independent computation, and what runs log and store
(HiSo's effective rate, per-example test correctness)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from hiso.algorithms import REGISTRY, Algorithm, algorithm_class
from hiso.algorithms.base import lr_schedule
from hiso.config import conf_dir
from hiso.federation.server import sample_clients
from hiso.optim.curvature import effective_lr
from hiso.schema import ConfigError
from hiso.tracking import predictions

from configs import digits_config, digits_simulation

OPTIONS = sorted(p.stem for p in (conf_dir() / "algo").glob("*.yaml"))


def preset_perturbations(option: str) -> list[str]:
    """The preset's own P, where it sets one (digits_config sets P = 3 for all)."""
    preset = OmegaConf.load(conf_dir() / "algo" / f"{option}.yaml")
    algo = preset.get("algo", preset)  # a global-package preset nests its keys under algo
    return (
        [f"algo.num_perturbations={algo.num_perturbations}"] if "num_perturbations" in algo else []
    )


@pytest.mark.parametrize("option", OPTIONS)
def test_every_algo_option_registers_and_runs_two_rounds_on_digits(option: str) -> None:
    sim = digits_simulation(f"algo={option}", "federation.rounds=2", *preset_perturbations(option))
    assert isinstance(sim.algorithm, algorithm_class(sim.cfg.algo.name))
    assert isinstance(sim.algorithm, Algorithm) and REGISTRY[sim.cfg.algo.name] is type(
        sim.algorithm
    )
    x0 = [x.clone() for x in sim.master]
    records: list[dict] = []
    sim.run(records.append)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert all(np.isfinite(r["train_loss"]) and r["uplink_bytes"] > 0 for r in records[1:])
    assert any(not torch.equal(a, b) for a, b in zip(x0, sim.master, strict=True))


def test_an_unknown_algorithm_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"algo\.name='sgd'.*hiso, decomfl, mezo, fedavg"):
        algorithm_class("sgd")


@pytest.mark.parametrize("algo", ["fedavg", "fedadam"])
def test_sequential_clients_are_sequential_sgd_over_the_sampled_clients(algo: str) -> None:
    """Each sampled client starts from the previous one's model, K local SGD steps each, and the
    round ends at the last one's model (FedAdam's server step never runs: m stays zero)."""
    overrides = (
        f"algo={algo}",
        "federation.client_updates=sequential",
        "federation.local_steps=2",
        "federation.rounds=2",
        "optim.lr=0.05",
    )
    sim = digits_simulation(*overrides)
    cfg, f = sim.cfg, sim.cfg.federation
    clients = copy.deepcopy(sim.clients)
    model = copy.deepcopy(sim.model).train()
    params = dict(model.named_parameters())
    x = [params[n] for n in sim.names]
    for rnd in range(f.rounds):
        for c in sample_clients(cfg.seed, rnd, f.num_clients, f.clients_per_round):
            for _ in range(f.local_steps):
                batch = sim.task.batch(clients[c].next_batch(cfg.optim.batch_size), sim.device)
                grads = torch.autograd.grad(sim.task.loss(model, batch).mean(), x)
                with torch.no_grad():
                    for p, g in zip(x, grads, strict=True):
                        p.sub_(cfg.optim.lr * g)
    sim.run(lambda record: None)
    for mine, theirs in zip(sim.master, x, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-5, atol=1e-6)
    parallel = digits_simulation(*overrides[:1], *overrides[2:])
    parallel.run(lambda record: None)
    assert not torch.allclose(parallel.master[0], sim.master[0])
    if algo == "fedadam":
        state = sim.algorithm.state_dict()["server_optimizer"]
        assert all(not m.any() for m in state["m"])


def test_sequential_clients_are_refused_for_a_scalar_only_algorithm() -> None:
    with pytest.raises(ConfigError, match=r"federation\.client_updates='sequential'"):
        digits_config("algo=decomfl", "federation.client_updates=sequential")


@pytest.mark.parametrize("scope", ["parameter", "global"])
def test_hiso_rows_carry_the_effective_rate(scope: str) -> None:
    sim = digits_simulation("algo=hiso", f"algo.curvature_scope={scope}", "federation.eval_every=3")
    rows = []
    sim.run(rows.append)
    evaluated = [r for r in rows if "val_accuracy" in r]
    assert [r["round"] for r in evaluated] == [0, 3, 6, 9, 12]
    for r in evaluated:
        lr = lr_schedule(sim.cfg).at(r["round"])  # the digits experiment decays it
        assert r["effective_lr"] == effective_lr(lr, r["curvature_inverse_mean"])
    assert evaluated[-1]["curvature_inverse_mean"] != 1.0  # H moved


def test_runs_store_test_correctness_at_the_final_and_the_best_round() -> None:
    sim = digits_simulation("algo=fedavg", "optim.lr=0.05", "federation.eval_every=2")
    rows = []
    extras = sim.run(rows.append)
    entries = extras["test_correct"]
    final, best = (predictions.decode(entries[k]) for k in ("final", "best"))
    assert entries["final"]["round"] == 12 and entries["best"]["round"] == extras["best_round"]
    assert final.mean() == rows[-1]["test_accuracy"]
    assert best.mean() == extras["test_accuracy_at_best"]
