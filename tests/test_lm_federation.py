"""The foundation's guarantees on language models: replay equivalence and the HiSo beta = 1
identity on tiny random OPT and LLaMA checkpoints fine-tuned on real movie-review sentences,
and the real `hiso-run` on a local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import hiso_run
from test_replay import (
    assert_bitwise_equal,
    assert_replicas_hold_the_server_state,
    run_with_replicas,
)

from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.tasks import build_task
from hiso.tracking.records import read_jsonl

from configs import CPU, DEVICES


def lm_overrides(checkpoint: Path, *extra: str) -> list[str]:
    return [
        f"model.path={checkpoint}",
        "model.name=tiny",
        "dataset=movie-reviews",
        "dataset.template=review",
        "dataset.max_train=160",
        "dataset.max_test=32",
        "dataset.max_length=32",
        "federation.num_clients=4",
        "federation.clients_per_round=2",
        "federation.rounds=6",
        "federation.eval_every=0",
        "optim.batch_size=4",
        "optim.lr=1e-3",
        "algo.num_perturbations=2",
        "logger=none",
        *extra,
    ]


def lm_simulation(checkpoint: Path, *extra: str, device: torch.device = CPU) -> Simulation:
    cfg = compose_config(lm_overrides(checkpoint, *extra))
    model, tokenizer = build_model(cfg.model, device, cfg.seed)
    return Simulation(cfg, model, build_task(cfg, tokenizer), device)


@pytest.mark.parametrize(
    "extra",
    [
        ("algo=hiso", "federation.length_buckets=3", "algo.direction_threads=2"),
        ("algo=decomfl", "federation.local_steps=2", "optim.momentum=0.9"),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_replica_rebuilds_language_model_bit_for_bit(
    checkpoint: Path, extra: tuple, device: torch.device
) -> None:
    sim = lm_simulation(checkpoint, *extra, device=device)
    x0 = [x.clone() for x in sim.master]
    replicas = run_with_replicas(sim)
    assert not all(torch.equal(a, b) for a, b in zip(x0, sim.master, strict=True))
    assert_replicas_hold_the_server_state(sim, replicas)


@pytest.mark.parametrize("device", DEVICES)
def test_hiso_beta_one_follows_decomfl_on_a_language_model(
    checkpoint: Path, device: torch.device
) -> None:
    buckets = "federation.length_buckets=3"
    hiso = lm_simulation(checkpoint, "algo=hiso", "algo.beta=1.0", buckets, device=device)
    decomfl = lm_simulation(checkpoint, "algo=decomfl", buckets, device=device)
    losses: dict[str, list[float]] = {"hiso": [], "decomfl": []}
    hiso.run(lambda r: losses["hiso"].append(r.get("train_loss", 0.0)))
    decomfl.run(lambda r: losses["decomfl"].append(r.get("train_loss", 0.0)))
    np.testing.assert_array_equal(losses["hiso"], losses["decomfl"])
    assert_bitwise_equal(hiso.master, decomfl.master)


def test_hiso_run_fine_tunes_a_local_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = lm_overrides(checkpoint, "federation.eval_every=3", f"hydra.run.dir={run_dir}")
    result = hiso_run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows if "val_accuracy" in r] == [0, 3, 6]
    assert [r["round"] for r in rows if "test_accuracy" in r] == [0, 6]
    assert rows[-1]["cumulative_bytes"] > 0


def test_local_text_files_split_by_dirichlet_over_labels(checkpoint: Path, tmp_path: Path) -> None:
    """A local JSON-lines copy of real sentences under sst2's columns, split over clients."""
    from hiso.data.movie_reviews import load_movie_reviews

    splits = load_movie_reviews()
    files = {}
    for split, n in (("train", 300), ("test", 40)):
        rows = [{"text": e["sentence"], "polarity": e["label"]} for e in splits[split][:n]]
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[split] = path
    sim = lm_simulation(
        checkpoint,
        "dataset=sst2",
        "dataset.source=local",
        f"dataset.data_files.train={files['train']}",
        f"dataset.data_files.test={files['test']}",
        "+dataset.columns.sentence=text",
        "+dataset.columns.label=polarity",
        "dataset.template=sst2",
        "federation.dirichlet_alpha=0.2",
        "federation.rounds=2",
    )
    labels = sim.task.train_labels()
    # dataset.max_train = 160, less the 16 carved off for validation
    assert labels is not None and sim.task.num_train == 144
    assert {len(c.indices) for c in sim.clients} == {36}
    shares = [labels[c.indices].mean() for c in sim.clients]
    assert max(shares) - min(shares) > 0.3  # label-skewed shards (the pool is about half positive)
    records: list[dict] = []
    sim.run(records.append)
    assert records[-1]["round"] == 2 and np.isfinite(records[-1]["train_loss"])
