"""Task construction from the dataset config: the data is read and checked first (no model
needed), then tokenised for the model's tokenizer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hiso.schema import ConfigError, RunConfig
from hiso.tasks.base import Task
from hiso.tasks.vision import ImageClassification, ImageData, read_digits

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from hiso.tasks.text import TextData

VISION_DATASETS = ("digits",)


def read_task_data(cfg: RunConfig) -> ImageData | TextData:
    """The task's examples, read and checked (name, template or prompt and label words, files,
    columns, labels), cut to dataset.max_train / max_test, the validation split carved from the
    training examples; nothing here loads a model or tokenises."""
    d = cfg.dataset
    if d.kind == "vision":
        if d.name not in VISION_DATASETS:
            raise ConfigError("dataset.name", d.name, "one of " + ", ".join(VISION_DATASETS))
        return read_digits(d.max_train, d.max_test, d.validation_size, d.validation_seed)
    from hiso.tasks.text import read_text_data

    return read_text_data(d, cfg.model.name)


def build_task(
    cfg: RunConfig,
    tokenizer: PreTrainedTokenizerBase | None,
    data: ImageData | TextData | None = None,
) -> Task:
    """The task over `data` (what read_task_data returned; read now when not given)."""
    if data is None:
        data = read_task_data(cfg)
    if isinstance(data, ImageData):
        return ImageClassification(data, cfg.dataset.eval_batch_size)
    if tokenizer is None:
        raise ConfigError("model.kind", cfg.model.kind, "'hf' for text datasets")
    from hiso.tasks.text import build_text_task

    return build_text_task(cfg.dataset, tokenizer, cfg.model.name, data)
