"""Any causal LM transformers loads: tiny random OPT, LLaMA, Qwen2, Gemma, Mistral and GPT-NeoX
checkpoints, each saved with its family's tokenizer conventions (BOS or none, a pad token or
none, padding on the right), load through hiso's loader with a pad token and no new token, keep
their BOS rule, score the same last-position logits batched as alone, and train a few rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_lm_federation import lm_simulation

from hiso.models.hf import TokenizerError, load_causal_lm
from hiso.schema import ModelConfig
from hiso.tasks.templates import left_pad, lm_logits

from configs import CPU
from lm_fixtures import (
    FAMILIES,
    LLAMA_SPECIAL,
    checkpoint_tokenizer,
    save_checkpoint,
    tiny_family,
    tiny_llama,
    tiny_opt,
)

# the token each family's checkpoints put in front of a prompt (None: nothing)
FIRST_TOKEN = {
    "opt": "</s>",
    "llama": "<|begin_of_text|>",
    "qwen2": None,
    "gemma": "<bos>",
    "mistral": "<s>",
    "gpt-neox": None,
}
assert set(FIRST_TOKEN) == {"opt", "llama", *FAMILIES}
TEXTS = [
    "Review: a good film\nSentiment:",
    "Review: the worst movie of the year , and then some more words\nSentiment:",
    "Review: bad\nSentiment:",
]


@pytest.fixture(scope="module", params=list(FIRST_TOKEN))
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(family, its saved checkpoint directory, the in-memory model it was saved from)."""
    name = request.param
    if name in FAMILIES:
        model, tokenizer = tiny_family(name)
    else:
        model, tokenizer = tiny_opt() if name == "opt" else tiny_llama()
        tokenizer.padding_side = "right"
    directory = save_checkpoint(model, tokenizer, tmp_path_factory.mktemp(name))
    return name, directory, model


def test_loads_with_a_pad_token_and_no_new_token(saved) -> None:
    name, directory, model = saved
    loaded, tokenizer = load_causal_lm(ModelConfig(name=name, path=str(directory)), CPU)
    rows = loaded.get_input_embeddings().num_embeddings
    assert tokenizer.pad_token is not None and 0 <= tokenizer.pad_token_id < rows
    assert len(tokenizer) == rows == model.config.vocab_size
    assert tokenizer.padding_side == "left"
    ids = torch.tensor([tokenizer(TEXTS[0]).input_ids])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_prompts_keep_the_family_bos_and_end_with_their_text(saved) -> None:
    name, directory, _ = saved
    _, tokenizer = load_causal_lm(ModelConfig(name=name, path=str(directory)), CPU)
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        plain = tokenizer(text, add_special_tokens=False).input_ids
        assert ids[len(ids) - len(plain) :] == plain
        head = tokenizer.convert_ids_to_tokens(ids[: len(ids) - len(plain)])
        assert head == ([FIRST_TOKEN[name]] if FIRST_TOKEN[name] else [])


def test_batched_last_position_logits_equal_the_unbatched(saved) -> None:
    """hiso's own left padding (real-token positions) and the loaded tokenizer's padding both
    give each row the logits it has alone."""
    name, directory, _ = saved
    model, tokenizer = load_causal_lm(ModelConfig(name=name, path=str(directory)), CPU)
    seqs = [tokenizer(t).input_ids for t in TEXTS]
    padded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert (padded.attention_mask[:, 0] == 0).any()  # some rows are padded, on the left
    with torch.no_grad():
        alone = torch.stack([model(torch.tensor([s])).logits[0, -1] for s in seqs])
        ids, mask = left_pad(seqs, tokenizer.pad_token_id, CPU)
        ours = lm_logits(model, ids, mask, keep=1)[:, -1]
        theirs = lm_logits(model, padded.input_ids, padded.attention_mask, keep=1)[:, -1]
    torch.testing.assert_close(ours, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(theirs, alone, atol=1e-5, rtol=0)


def test_a_few_zero_order_rounds_run(saved) -> None:
    _, directory, _ = saved
    sim = lm_simulation(directory, "algo=hiso", "federation.rounds=2")
    x0 = [x.clone() for x in sim.master]
    records: list[dict] = []
    sim.run(records.append)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in records[1:])
    assert not all(torch.equal(a, b) for a, b in zip(x0, sim.master, strict=True))


def test_a_tokenizer_that_appends_eos_is_refused(tmp_path: Path) -> None:
    """The last position would be the appended eos, not the prompt's last token."""
    model, _ = tiny_llama()
    tokenizer = checkpoint_tokenizer(LLAMA_SPECIAL, append_eos=True)
    save_checkpoint(model, tokenizer, tmp_path)
    with pytest.raises(TokenizerError, match=r"<\|end_of_text\|>.*add_eos_token"):
        load_causal_lm(ModelConfig(name="tiny", path=str(tmp_path)), CPU)
