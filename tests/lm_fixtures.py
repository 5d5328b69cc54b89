"""Tiny random causal LMs (hidden 64, 2 layers, 4 heads) of several architectures with a
byte-level BPE tokenizer trained in-process on real movie-review sentences and the prompt
templates' words, each tokenizer with its family's special tokens, BOS rule and padding side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GemmaConfig,
    GemmaForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hiso.data.movie_reviews import load_movie_reviews
from hiso.models.hf import configure_tokenizer
from hiso.tasks.templates import TEMPLATES

OPT_SPECIAL = {"bos_token": "</s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
LLAMA_SPECIAL = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
SPECIAL_TOKENS = ["<unk>", "<pad>", "</s>", "<|begin_of_text|>", "<|end_of_text|>"]
VOCAB_SIZE = 1200
LABEL_REPEATS = 50  # makes every label word frequent enough to become one BPE token


@cache
def corpus() -> tuple[str, ...]:
    """300 movie-review sentences, the templates' text and their label words."""
    sentences = [e["sentence"] for e in load_movie_reviews()["train"][:300]]
    words = sorted({w for t in TEMPLATES.values() for w in t.label_words})
    prompts = [t.prompt.replace("{", "").replace("}", "") for t in TEMPLATES.values()]
    return (*sentences, *prompts, *(f"{w}\n{w}" for w in words for _ in range(LABEL_REPEATS)))


@cache
def _bpe() -> str:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    return tokenizer.to_str()


def checkpoint_tokenizer(
    special: dict[str, str], prepend_bos: bool = True, append_eos: bool = False
) -> PreTrainedTokenizerBase:
    """The trained BPE with `special` tokens (those it lacks appended to its vocabulary), as a
    checkpoint ships it (padding not set up); the bos token is prepended to every encoding when
    `prepend_bos`, the eos token appended when `append_eos`."""
    backend = Tokenizer.from_str(_bpe())
    backend.add_special_tokens([t for t in special.values() if backend.token_to_id(t) is None])
    single = ["$A"]
    if prepend_bos:
        single.insert(0, special["bos_token"])
    if append_eos:
        single.append(special["eos_token"])
    backend.post_processor = processors.TemplateProcessing(
        single=" ".join(single),
        special_tokens=[(t, backend.token_to_id(t)) for t in single if t != "$A"],
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def make_tokenizer(special: dict[str, str]) -> PreTrainedTokenizerBase:
    """checkpoint_tokenizer configured as the model loader configures it."""
    tokenizer = checkpoint_tokenizer(special)
    configure_tokenizer(tokenizer)
    return tokenizer


def tiny_opt() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = make_tokenizer(OPT_SPECIAL)
    torch.manual_seed(0)
    config = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        word_embed_proj_dim=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=128,
        max_position_embeddings=512,
        init_std=0.2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return OPTForCausalLM(config).eval(), tokenizer


def tiny_llama() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model is sized by the checkpoint's tokenizer, before the loader configures it."""
    tokenizer = checkpoint_tokenizer(LLAMA_SPECIAL)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    configure_tokenizer(tokenizer)
    return LlamaForCausalLM(config).eval(), tokenizer


def save_checkpoint(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path
) -> Path:
    """Write a checkpoint that `load_causal_lm(ModelConfig(name=..., path=directory))` loads."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@dataclass(frozen=True)
class Family:
    """A model family's tokenizer conventions (as its checkpoints ship them) and tiny config."""

    special: dict[str, str]
    prepend_bos: bool
    config: Callable[[PreTrainedTokenizerBase], Any]
    model: Callable[[Any], PreTrainedModel]


def _decoder_shape(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The tiny shape of LLaMA-like configs, sized by the checkpoint's tokenizer."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "initializer_range": 0.2,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


# Qwen2 adds no BOS and pads with <|endoftext|>; Gemma adds <bos> and has <pad>; Mistral adds <s>
# and has no pad; GPT-NeoX (Pythia) adds no BOS and has no pad
FAMILIES: dict[str, Family] = {
    "qwen2": Family(
        {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
        False,
        lambda t: Qwen2Config(**_decoder_shape(t)),
        Qwen2ForCausalLM,
    ),
    "gemma": Family(
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
        True,
        lambda t: GemmaConfig(**_decoder_shape(t), head_dim=16),
        GemmaForCausalLM,
    ),
    "mistral": Family(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
        True,
        lambda t: MistralConfig(**_decoder_shape(t)),
        MistralForCausalLM,
    ),
    "gpt-neox": Family(
        {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
        False,
        lambda t: GPTNeoXConfig(
            vocab_size=len(t),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=512,
            initializer_range=0.2,
            bos_token_id=t.bos_token_id,
            eos_token_id=t.eos_token_id,
        ),
        GPTNeoXForCausalLM,
    ),
}


def tiny_family(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny random model of family `name` and its checkpoint's tokenizer, unconfigured and
    padding on the right (as Qwen's and others' checkpoints do): what the loader receives."""
    family = FAMILIES[name]
    tokenizer = checkpoint_tokenizer(family.special, family.prepend_bos)
    tokenizer.padding_side = "right"
    torch.manual_seed(0)
    return family.model(family.config(tokenizer)).eval(), tokenizer
