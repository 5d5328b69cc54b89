"""What a Hugging Face checkpoint is, read before any weight loads: its config (a causal language
model, with positions for the prompts), its tokenizer, the headers of its safetensors files, and
the modules LoRA would adapt (from a copy of the model on the meta device, which holds no
weights). Each problem is one ConfigError naming the field, its value and what is allowed.

A hub checkpoint that is not in the local cache is left to the model loader, whose message says
how to fetch it; a local directory (model.path, or a converted GGUF file) must be whole."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)
from transformers.pytorch_utils import Conv1D

from hiso.models.hf import TokenizerError, checkpoint_source, load_tokenizer
from hiso.schema import ConfigError, LoRAConfig, ModelConfig, RunConfig

CAUSAL_CLASSES = frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
# the layer types peft puts LoRA adapters on
ADAPTABLE = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, Conv1D)


def source_field(cfg: ModelConfig) -> tuple[str, str | None]:
    """The config field that names the checkpoint, and its value (the loader's precedence)."""
    if cfg.path:
        return "model.path", cfg.path
    if cfg.gguf_package:
        return "model.gguf_package", cfg.gguf_package
    return "model.hub_id", cfg.hub_id


def check_checkpoint(cfg: RunConfig, generative: bool) -> PreTrainedTokenizerBase | None:
    """Check the run's hf checkpoint against the run (see the module); return its tokenizer,
    configured as the loader configures it, or None for a hub checkpoint not cached here."""
    key, value = source_field(cfg.model)
    source, token = checkpoint_source(cfg.model)
    local = isinstance(source, Path)
    try:
        config = AutoConfig.from_pretrained(source, token=token)
    except (OSError, ValueError, KeyError) as err:
        if not local:
            return None
        raise ConfigError(
            key, value, f"a checkpoint whose config.json transformers reads ({_reason(err)})"
        ) from None
    check_causal(key, value, config)
    check_positions(cfg, config, generative)
    if cfg.model.lora.r > 0:
        check_lora_targets(cfg.model.lora, config)
    if local:
        check_weight_files(key, value, source)
    try:
        return load_tokenizer(cfg.model)
    except TokenizerError:
        raise
    except Exception as err:  # transformers raises OSError, ValueError or TypeError by file
        if not local:
            return None
        raise ConfigError(
            key,
            value,
            "a checkpoint with the tokenizer files transformers loads (tokenizer.json, or the "
            f"model's vocabulary files, with tokenizer_config.json): {_reason(err)}",
        ) from None


def _reason(err: BaseException) -> str:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first.rstrip('.:')}"


def check_causal(key: str, value: Any, config: Any) -> None:
    """A causal LM: an architecture of its config.json is one (BERT's BertForMaskedLM is not),
    or without architectures its model type has a causal LM class and, for an encoder family
    (one with a masked-LM head), is configured as a decoder."""
    names = list(getattr(config, "architectures", None) or [])
    kind = config.model_type
    if names:
        if any(name in CAUSAL_CLASSES for name in names):
            return
        problem = f"its config.json names the architecture(s) {names}, none a causal LM"
    elif kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        problem = f"its model_type {kind!r} has no causal LM class in transformers"
    elif kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.is_decoder:
        problem = f"its model_type {kind!r} is an encoder (is_decoder false)"
    else:
        return
    raise ConfigError(
        key,
        value,
        f"a causal language model checkpoint (e.g. LlamaForCausalLM, OPTForCausalLM, "
        f"GPT2LMHeadModel): {problem}, so its language-model head would be random",
    )


def positions(config: Any) -> int | None:
    """The longest input the model's position embeddings cover (None: no limit given)."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_positions(cfg: RunConfig, config: Any, generative: bool) -> None:
    """dataset.max_length tokens of prompt (plus dataset.generation_tokens of answer for a
    generative task) fit in the model's positions."""
    limit = positions(config)
    d = cfg.dataset
    extra = d.generation_tokens if generative else 0
    if limit is None or d.max_length + extra <= limit:
        return
    answer = f" less dataset.generation_tokens={extra} for the answer" if extra else ""
    raise ConfigError(
        "dataset.max_length",
        d.max_length,
        f"an integer from 1 to {limit - extra}: model {cfg.model.name!r} has {limit} positions "
        f"(max_position_embeddings in its config.json){answer}",
    )


def check_lora_targets(lora: LoRAConfig, config: Any) -> None:
    """Each LoRA target names layers of the model (a module name, or its last dotted parts, as
    peft matches them) that peft can adapt; the names come from the model built on the meta
    device."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    modules = dict(model.named_modules())
    adaptable = sorted(
        {name.rsplit(".", 1)[-1] for name, m in modules.items() if isinstance(m, ADAPTABLE)}
    )
    for target in lora.targets:
        found = [m for n, m in modules.items() if n == target or n.endswith(f".{target}")]
        if not found or not all(isinstance(m, ADAPTABLE) for m in found):
            what = "no module" if not found else "modules peft cannot adapt"
            raise ConfigError(
                "model.lora.targets",
                list(lora.targets),
                f"names of this model's linear, embedding or convolution layers: "
                f"{target!r} names {what}; the model's are {', '.join(adaptable)}",
            )


def check_weight_files(key: str, value: Any, folder: Path) -> None:
    """Every safetensors file of `folder` (and every shard its index names) is there and as
    long as its header says: a truncated copy fails here instead of in the loader."""
    index = folder / "model.safetensors.index.json"
    files = sorted(folder.glob("*.safetensors"))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ConfigError(
                key,
                value,
                f"a checkpoint with every weight file its index names: {missing} are missing",
            )
    for file in files:
        size = file.stat().st_size
        expected = _safetensors_length(file)
        if expected != size:
            described = "an unreadable header" if expected is None else f"{expected} bytes"
            raise ConfigError(
                key,
                value,
                f"a checkpoint with whole weight files: {file.name} holds {size} bytes and "
                f"its header describes {described} (truncated? copy or download it again)",
            )


def _safetensors_length(file: Path) -> int | None:
    """The length a safetensors file's header describes: 8 bytes of header size, the JSON
    header, then the tensors up to the largest end offset; None when the header is unreadable."""
    with file.open("rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            return None
        (length,) = struct.unpack("<Q", head)
        raw = stream.read(min(length, 100_000_000))
    if len(raw) != length:
        return None
    try:
        header = json.loads(raw)
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return 8 + length + max(ends, default=0)
