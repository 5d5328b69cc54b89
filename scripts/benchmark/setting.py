"""What scripts/bench.py runs: the papers' setting, the models and their tasks (the OPT-shaped
random models among them), and one model's measurement plan (Bench)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import OPTConfig, OPTForCausalLM

from hiso.models import build_model
from hiso.models.hf import load_tokenizer
from hiso.seeding import derive_seed
from hiso.tasks import build_task
from hiso.tasks.base import Task

ROOT = Path(__file__).resolve().parents[2]
# the papers' setting; the sampled count and the client count vary per measurement
SETTING = (
    "federation.local_steps=1",
    "algo.num_perturbations=5",
    "algo.difference=forward",
    "optim.batch_size=16",
    "federation.rounds=1000000",
    "federation.eval_every=0",
    "logger=none",
)
LM_TASK = ("model=smollm2-135m", "dataset=movie-reviews")
QUICK_DATA = ("dataset.max_train=512", "dataset.max_test=64")
OPT_125M_SHAPE = {
    "hidden_size": 768,
    "word_embed_proj_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "ffn_dim": 3072,
    "vocab_size": 50272,
    "max_position_embeddings": 2048,
}
OPT_1_3B_SHAPE = OPT_125M_SHAPE | {
    "hidden_size": 2048,
    "word_embed_proj_dim": 2048,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "ffn_dim": 8192,
}
OPT_SHAPES = {"opt125m-shape": OPT_125M_SHAPE, "opt1.3b-shape": OPT_1_3B_SHAPE}
MODELS = ("smollm2", *OPT_SHAPES, "cnn")
OPT_TINY_SHAPE = {
    "hidden_size": 64,
    "word_embed_proj_dim": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "ffn_dim": 128,
    "vocab_size": 50272,
    "max_position_embeddings": 2048,
}
DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class Bench:
    """What one run measures (the defaults are the full benchmark; `quick` shrinks everything)."""

    rounds: int
    warmup: int
    sampled: tuple[int, ...]
    clients: tuple[int, int] = (8, 64)
    quick: bool = False
    overrides: tuple[str, ...] = ()


def model_overrides(name: str, quick: bool) -> tuple[str, ...]:
    if name == "cnn":
        return ("+experiment=digits",)
    return LM_TASK + (QUICK_DATA if quick else ())


def opt_shaped_model(shape: dict[str, int], tokenizer: Any, seed: int) -> OPTForCausalLM:
    """A float32 OPTForCausalLM of `shape`, seeded initialisation (the global RNG is kept)."""
    config = OPTConfig(
        **shape,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "opt125m-shape"))
        return OPTForCausalLM(config).eval()


def build(name: str, cfg: Any, device: torch.device, quick: bool) -> tuple[nn.Module, Task]:
    """The model and task of a benchmark entry (quick: a tiny OPT in place of both LMs)."""
    if name == "cnn" or (name == "smollm2" and not quick):
        model, tokenizer = build_model(cfg.model, device, cfg.seed)
        return model, build_task(cfg, tokenizer)
    tokenizer = load_tokenizer(cfg.model)
    shape = OPT_TINY_SHAPE if quick else OPT_SHAPES[name]
    return opt_shaped_model(shape, tokenizer, cfg.seed).to(device), build_task(cfg, tokenizer)
