"""A checkpoint that is not what the run needs ends `hiso-run` before its weights load: not a
causal LM, too few positions for dataset.max_length, no tokenizer files, a truncated safetensors
file, LoRA targets it does not have. Tiny real checkpoints written to tmp_path; one message, exit
2, no model built."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

from hiso.config import compose_config
from hiso.models.hf_checks import check_checkpoint
from hiso.schema import ConfigError

from cli_inputs import run_main
from lm_fixtures import OPT_SPECIAL, checkpoint_tokenizer, save_checkpoint, tiny_llama

# no test here may build a model
pytestmark = pytest.mark.usefixtures("no_model")

RUN = (
    "dataset.template=review",
    "dataset.max_train=40",
    "dataset.max_test=8",
    "dataset.validation_size=8",
    "dataset.max_length=32",
    "federation.num_clients=2",
    "federation.clients_per_round=1",
    "optim.batch_size=4",
    "logger=none",
)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole tiny LLaMA checkpoint (512 positions)."""
    model, tokenizer = tiny_llama()
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("ckpt") / "llama")


def refused(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> str:
    """The one message of `hiso-run ARGS` refused with exit 2."""
    monkeypatch.chdir(tmp_path)
    code = run_main([*RUN, *args, f"hydra.run.dir={tmp_path}/run"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("hiso-run:") == 1, err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    return err.strip()


def test_a_whole_checkpoint_passes(llama: Path) -> None:
    cfg = compose_config([f"model.path={llama}", *RUN, "model.lora.r=2"])
    assert check_checkpoint(cfg, generative=False) is not None


def test_an_encoder_is_not_a_causal_lm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    bert = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    BertForMaskedLM(bert).save_pretrained(tmp_path / "bert")
    message = refused([f"model.path={tmp_path / 'bert'}"], tmp_path, monkeypatch, capsys)
    assert f"model.path='{tmp_path / 'bert'}' is not allowed" in message
    assert "a causal language model checkpoint" in message and "BertForMaskedLM" in message


def test_max_length_beyond_the_models_positions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    tokenizer = checkpoint_tokenizer(OPT_SPECIAL)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    shape = {"n_positions": 32, "n_embd": 32, "n_layer": 1, "n_head": 2}
    gpt2 = GPT2Config(vocab_size=len(tokenizer), **shape, **ids)
    folder = save_checkpoint(GPT2LMHeadModel(gpt2), tokenizer, tmp_path / "gpt2")
    message = refused(
        [f"model.path={folder}", "dataset.max_length=33"], tmp_path, monkeypatch, capsys
    )
    assert "dataset.max_length=33 is not allowed: an integer from 1 to 32" in message
    assert "has 32 positions" in message
    cfg = compose_config([f"model.path={folder}", *RUN])  # max_length 32: fits
    assert check_checkpoint(cfg, generative=False) is not None
    with pytest.raises(ConfigError, match=r"from 1 to 16: .*generation_tokens=16 for the answer"):
        check_checkpoint(cfg, generative=True)


def test_a_checkpoint_without_its_tokenizer(
    llama: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((llama / name).read_bytes())
    message = refused([f"model.path={folder}"], tmp_path, monkeypatch, capsys)
    assert "model.path=" in message and "tokenizer files" in message


def test_a_truncated_weight_file(
    llama: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    for file in llama.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    whole = (llama / "model.safetensors").stat().st_size
    with (folder / "model.safetensors").open("r+b") as stream:
        stream.truncate(whole - 1000)
    message = refused([f"model.path={folder}"], tmp_path, monkeypatch, capsys)
    assert f"model.safetensors holds {whole - 1000} bytes" in message
    assert f"its header describes {whole} bytes" in message


def test_lora_targets_the_model_does_not_have(
    llama: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    args = [f"model.path={llama}", "model.lora.r=2", "model.lora.targets=[q_proj,query]"]
    message = refused(args, tmp_path, monkeypatch, capsys)
    assert "model.lora.targets=['q_proj', 'query'] is not allowed" in message
    assert "'query' names no module" in message and "q_proj, up_proj, v_proj" in message
    args[-1] = "model.lora.targets=[self_attn]"  # a module, but no layer peft adapts
    message = refused(args, tmp_path, monkeypatch, capsys)
    assert "'self_attn' names modules peft cannot adapt" in message
