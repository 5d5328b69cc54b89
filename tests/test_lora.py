"""Language-model baselines on the tiny OPT and LLaMA checkpoints: LoRA adapters as the only
trainable parameters (replay and the HiSo beta = 1 identity still bit for bit), and first-order
clients training with dropout on (tiny OPT has dropout 0.1) while evaluation stays in eval mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_lm_federation import lm_simulation
from test_replay import (
    assert_bitwise_equal,
    assert_replicas_hold_the_server_state,
    run_with_replicas,
)

from hiso.schema import ConfigError

LORA = ("model.lora.r=4", "model.lora.alpha=16")


def test_lora_trains_exactly_the_adapters_of_the_target_modules(checkpoint: Path) -> None:
    sim = lm_simulation(checkpoint, "algo=hiso", *LORA)
    trainable = {n for n, p in sim.model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in sim.model.named_parameters() if n not in trainable}
    layers = sim.model.config.num_hidden_layers
    assert len(trainable) == layers * 2 * 2  # q_proj and v_proj, A and B each
    for name in trainable:
        module = name.split(".lora_")[0].rsplit(".", 1)[-1]
        assert module in ("q_proj", "v_proj") and (".lora_A." in name or ".lora_B." in name)
    assert sim.num_parameters == sum(
        p.numel() for n, p in sim.model.named_parameters() if n in trainable
    )
    assert all(x.dtype == torch.float32 for x in sim.master)
    x0 = [x.clone() for x in sim.master]
    sim.run(lambda record: None)
    assert not all(torch.equal(a, b) for a, b in zip(x0, sim.master, strict=True))
    for name, p in sim.model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    assert sim.algorithm.state.curvature is not None
    assert [h.shape for h in sim.algorithm.state.curvature] == [x.shape for x in sim.master]


def test_lora_adapters_are_drawn_from_the_run_seed(checkpoint: Path) -> None:
    def adapters(seed: int) -> list[torch.Tensor]:
        return lm_simulation(checkpoint, "algo=decomfl", *LORA, f"seed={seed}").master

    assert_bitwise_equal(adapters(0), adapters(0))
    assert not torch.equal(adapters(0)[0], adapters(1)[0])


@pytest.mark.parametrize(
    "extra",
    [
        ("algo=hiso", "federation.local_steps=2"),
        ("algo=decomfl", "optim.momentum=0.9", "algo.direction_threads=2"),
    ],
)
def test_replica_rebuilds_the_adapters_bit_for_bit(checkpoint: Path, extra: tuple) -> None:
    sim = lm_simulation(checkpoint, *LORA, *extra)
    replicas = run_with_replicas(sim)
    assert_replicas_hold_the_server_state(sim, replicas)


def test_hiso_beta_one_is_decomfl_with_lora(checkpoint: Path) -> None:
    hiso = lm_simulation(checkpoint, "algo=hiso", "algo.beta=1.0", *LORA)
    decomfl = lm_simulation(checkpoint, "algo=decomfl", *LORA)
    losses: dict[str, list[float]] = {"hiso": [], "decomfl": []}
    hiso.run(lambda r: losses["hiso"].append(r.get("train_loss", 0.0)))
    decomfl.run(lambda r: losses["decomfl"].append(r.get("train_loss", 0.0)))
    np.testing.assert_array_equal(losses["hiso"], losses["decomfl"])
    assert_bitwise_equal(hiso.master, decomfl.master)


def test_lora_targets_that_match_nothing_are_named(checkpoint: Path) -> None:
    with pytest.raises(ConfigError) as error:
        lm_simulation(checkpoint, *LORA, "model.lora.targets=[nothing_proj]")
    assert "model.lora.targets" in str(error.value) and "nothing_proj" in str(error.value)


@pytest.mark.parametrize("checkpoint", ["opt"], indirect=True)  # OPT has dropout, LLaMA none
def test_first_order_clients_train_with_seeded_dropout(checkpoint: Path) -> None:
    """Two clients on the same batches from the same model differ only by their dropout draws
    (in eval mode they would agree); the same client again agrees bit for bit; evaluation and
    the zeroth-order forwards stay in eval mode."""
    sim = lm_simulation(checkpoint, "algo=fedavg", "optim.lr=0.05")
    assert sim.model.config.dropout > 0
    assert sim.algorithm.client_update is not None
    batches = [sim.clients[0].next_batch(4)]
    out = {}
    for key, client in (("a", 0), ("b", 1), ("a again", 0)):
        model = [torch.empty_like(x) for x in sim.master]
        sim.algorithm.client_update(0, client, batches, model)
        out[key] = model
    assert not sim.model.training
    assert_bitwise_equal(out["a"], out["a again"])
    assert not all(torch.equal(a, b) for a, b in zip(out["a"], out["b"], strict=True))
    first = lm_simulation(checkpoint, "algo=fedadam", "federation.rounds=2")
    second = lm_simulation(checkpoint, "algo=fedadam", "federation.rounds=2")
    first.run(lambda record: None)
    second.run(lambda record: None)
    assert_bitwise_equal(first.master, second.master)
