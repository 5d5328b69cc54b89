"""Task construction from the dataset config."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from hiso.config import ConfigError, RunConfig
from hiso.tasks.base import Task
from hiso.tasks.vision import digits_task

VISION_DATASETS = ("digits",)


def build_task(cfg: RunConfig, tokenizer: PreTrainedTokenizerBase | None) -> Task:
    d = cfg.dataset
    if d.kind == "vision":
        if d.name not in VISION_DATASETS:
            raise ConfigError("dataset.name", d.name, "one of " + ", ".join(VISION_DATASETS))
        return digits_task(d.eval_batch_size, d.validation_size, d.validation_seed)
    if tokenizer is None:
        raise ConfigError("model.kind", cfg.model.kind, "'hf' for text datasets")
    from hiso.tasks.text import build_text_task

    return build_text_task(d, tokenizer, cfg.model.name)
