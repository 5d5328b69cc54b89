"""`hiso-run-export`: a run's model taken away. A tiny language model's run exported and loaded
back with transformers (and peft) scores what the run reported; the CNN's state dict has names."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from hiso import cli
from hiso.config import compose_config
from hiso.export import export, main
from hiso.models import build_model
from hiso.models.cnn import SmallCNN
from hiso.tracking.checkpoint import Checkpoints

import lm_fixtures

ROOT = Path(__file__).resolve().parents[1]
# a tiny LLaMA on movie reviews: rounds 2 and 4 evaluated; a large rate so the model moves
TINY = [
    "model.name=tiny",
    "dataset=movie-reviews",
    "dataset.template=review",
    "dataset.max_train=96",
    "dataset.max_test=24",
    "dataset.validation_size=16",
    "dataset.max_length=32",
    "federation.num_clients=2",
    "federation.rounds=4",
    "federation.eval_every=2",
    "optim.batch_size=4",
    "optim.lr=5e-2",
    "algo.num_perturbations=2",
    "logger=none",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = lm_fixtures.tiny_llama()
    return lm_fixtures.save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("tiny"))


def trained(run_dir: Path, *extra: str) -> dict:
    return cli.run(compose_config([*TINY, *extra]), run_dir)


def scored(model_dir: Path, run_dir: Path, *extra: str) -> float:
    """Test accuracy of the model in `model_dir` (loaded with from_pretrained) on the run's test
    split: `hiso-run eval`'s job, round 0 of a run that trains nothing."""
    summary = cli.run(
        compose_config([*TINY, f"model.path={model_dir}", "federation.rounds=0", *extra]), run_dir
    )
    return summary["final_test_accuracy"]


def test_entry_point_is_installed_with_the_package() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hiso-run-export"] == "hiso.export:main"


def test_exported_model_scores_what_the_run_reported(base: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = trained(run, f"model.path={base}")
    for which, reported in (
        ("best", summary["test_accuracy_at_best"]),
        ("last", summary["final_test_accuracy"]),
    ):
        out = tmp_path / which
        assert main([str(run), "--round", which, "--out", str(out)]) == 0
        loaded = AutoModelForCausalLM.from_pretrained(out)
        assert isinstance(loaded, torch.nn.Module) and (out / "tokenizer_config.json").is_file()
        assert scored(out, tmp_path / f"eval-{which}") == reported
        record = json.loads((out / "hiso-export.json").read_text())
        assert record["test_accuracy"] == reported and record["which"] == which
    assert summary["best_round"] != 4 or summary["test_accuracy_at_best"] == reported


def test_lora_exports_the_adapter_or_the_merged_model(base: Path, tmp_path: Path) -> None:
    from peft import PeftModel

    run = tmp_path / "run"
    summary = trained(run, f"model.path={base}", "model.lora.r=4", "model.lora.alpha=8")
    adapter = export(run, tmp_path / "adapter", "last")
    assert (adapter / "adapter_config.json").is_file()
    assert not (adapter / "model.safetensors").exists()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    adapters = [p for n, p in with_adapter.named_parameters() if "lora_" in n]
    state = torch.load(sorted((run / "checkpoints").iterdir())[-1], weights_only=False)
    trained_adapters = state["simulation"]["parameters"]
    assert any(t.abs().sum() > 0 for t in trained_adapters[1::2])  # B moved from zero
    assert all(torch.equal(a, t) for a, t in zip(adapters, trained_adapters, strict=True))
    merged = export(run, tmp_path / "merged", "last", merge=True)
    plain = AutoModelForCausalLM.from_pretrained(merged)
    tokens = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(tokens).logits, plain(tokens).logits)
    assert scored(merged, tmp_path / "eval") == summary["final_test_accuracy"]


def test_cnn_exports_a_named_state_dict(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli.run(compose_config(["+experiment=digits", "logger=none", "federation.rounds=3"]), run)
    out = export(run, tmp_path / "cnn", "last")
    sizes = json.loads((out / "cnn.json").read_text())
    model = SmallCNN(**sizes)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    state = torch.load(sorted((run / "checkpoints").iterdir())[-1], weights_only=False)
    saved = state["simulation"]["parameters"]
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), saved, strict=True))


def test_any_round_is_rebuilt_by_replay_bit_for_bit(tmp_path: Path) -> None:
    """A scalar-only run with a checkpoint of every round: --round N exported from a copy with
    no checkpoint (a replay from the starting model) and from one with round 2's only (a replay
    from it) holds that checkpoint's parameters; best and last too, with best-model.pt gone."""
    run = tmp_path / "run"
    overrides = [
        "+experiment=digits",
        "logger=none",
        "federation.rounds=6",
        "federation.eval_every=2",
        "optim.momentum=0.9",
        "checkpoint.every=1",
        "checkpoint.keep=10",
    ]
    cfg = compose_config(overrides)
    summary = cli.run(cfg, run)
    assert not (run / "best-model.pt").exists()  # rebuilt by replay, not kept
    saved = {
        rnd: torch.load(path, weights_only=False)["simulation"]["parameters"]
        for rnd, path in Checkpoints(run / "checkpoints", 1).files()
    }
    start = build_model(cfg.model, torch.device("cpu"), cfg.seed)[0]
    saved[0] = [p.detach() for p in start.parameters()]  # the starting model: round 0
    bare, from_two = tmp_path / "bare", tmp_path / "from-two"
    for copy, kept in ((bare, ()), (from_two, (2,))):
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
        for rnd in kept:
            (copy / "checkpoints").mkdir()
            shutil.copy(Checkpoints(run / "checkpoints", 1).path(rnd), copy / "checkpoints")
        cases = [("4", 4), ("5", 5), ("last", 6), ("best", summary["best_round"])]
        for which, rnd in cases:
            out = export(copy, tmp_path / f"{copy.name}-{which}", which)
            model = SmallCNN(**json.loads((out / "cnn.json").read_text()))
            model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
            parameters = list(model.parameters())
            assert all(torch.equal(p, s) for p, s in zip(parameters, saved[rnd], strict=True))
    assert main([str(bare), "--round", "7", "--out", str(tmp_path / "x")]) == 2


def test_a_dense_run_without_its_last_snapshot_is_refused_by_name(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    overrides = ["+experiment=digits", "logger=none", "federation.rounds=2", "algo=fedavg"]
    cfg = compose_config(overrides)
    cli.run(cfg, run)
    assert (run / "best-model.pt").is_file()  # a dense run cannot rebuild it
    shutil.rmtree(run / "checkpoints")
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # what hiso-run's Hydra writes
    assert main([str(run), "--round", "last", "--out", str(tmp_path / "x")]) == 2
    assert "algo=fedavg has none: its rounds are dense" in capsys.readouterr().err
