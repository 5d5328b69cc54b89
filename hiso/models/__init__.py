"""Model construction: the digits CNN here, Hugging Face causal LMs in hiso.models.hf."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from hiso.models.cnn import SmallCNN
from hiso.schema import ModelConfig
from hiso.seeding import derive_seed

if TYPE_CHECKING:  # transformers loads with a language model only (about 1 s)
    from transformers import PreTrainedTokenizerBase


def build_model(
    cfg: ModelConfig, device: torch.device, seed: int
) -> tuple[nn.Module, PreTrainedTokenizerBase | None]:
    """The model in float32 on `device` (with LoRA adapters when cfg.lora.r > 0); randomly
    initialised parts draw from a generator derived from the run seed (the global RNG is left as
    it was)."""
    if cfg.kind == "cnn":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model-init"))
            model = SmallCNN(cfg.channels, cfg.hidden)
        return model.to(device), None
    from hiso.models.hf import load_causal_lm, with_lora

    model, tokenizer = load_causal_lm(cfg, device)
    if cfg.lora.r > 0:
        model = with_lora(model, cfg.lora, seed)
    return model, tokenizer
