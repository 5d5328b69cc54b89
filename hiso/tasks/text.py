"""Text tasks for causal LMs: label-word classification (SST-2, SuperGLUE, QQP, movie reviews,
your own) and generation (SQuAD, your own), built from a DatasetConfig: a built-in task is a
preset that dataset.prompt / label_words / label_names / label_column / answer_column may change
part by part (hiso/tasks/custom.py), any other dataset.name is your own task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from hiso.data.sources import load_examples
from hiso.data.validation import carve_validation
from hiso.schema import ConfigError, DatasetConfig
from hiso.tasks.base import Batch, HeldOut, Task
from hiso.tasks.custom import TaskDefinition, define_task, with_truncated_field
from hiso.tasks.squad import SquadTask
from hiso.tasks.templates import (
    TEMPLATES,
    Template,
    TemplateError,
    encode_prompts,
    label_token_ids,
    left_pad,
    lm_logits,
)


@dataclass(frozen=True)
class TaskSpec:
    """A dataset's example fields, class names (None: generative) and default template, which
    `model_templates` may override per model name."""

    fields: tuple[str, ...]
    template: str
    label_names: tuple[str, ...] | None
    model_templates: Mapping[str, str] = field(default_factory=dict)


BINARY = ("false", "true")
TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec(("sentence",), "sst2", ("negative", "positive")),
    "movie-reviews": TaskSpec(
        ("sentence",), "sst2", ("negative", "positive"), {"smollm2-135m": "review"}
    ),
    "rte": TaskSpec(("premise", "hypothesis"), "rte", ("entailment", "not_entailment")),
    "cb": TaskSpec(("premise", "hypothesis"), "cb", ("entailment", "contradiction", "neutral")),
    "boolq": TaskSpec(("passage", "question"), "boolq", BINARY),
    "wic": TaskSpec(("word", "sentence1", "sentence2"), "wic", BINARY),
    "wsc": TaskSpec(("text", "span1_text", "span2_text"), "wsc", BINARY),
    "multirc": TaskSpec(("paragraph", "question", "answer"), "multirc", BINARY),
    "qqp": TaskSpec(("question1", "question2"), "qqp", ("not_duplicate", "duplicate")),
    "squad": TaskSpec(("title", "context", "question", "answers"), "squad", None),
}


def resolve_template(cfg: DatasetConfig, model_name: str) -> Template:
    """cfg.template if set, else the dataset's default for this model; checked against the task."""
    spec = _spec(cfg)
    name = cfg.template or spec.model_templates.get(model_name, spec.template)
    template = _named_template(name)
    missing = set(template.fields) - set(spec.fields)
    classes = len(spec.label_names) if spec.label_names else 0
    if missing or len(template.label_words) != classes:
        raise TemplateError(
            f"template {name!r} does not fit dataset {cfg.name!r}: it reads fields "
            f"{template.fields} and has {len(template.label_words)} label words; the dataset "
            f"has fields {spec.fields} and {classes} classes."
        )
    return template


def _named_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError("dataset.template", name, "one of " + ", ".join(TEMPLATES))
    return TEMPLATES[name]


def text_task_definition(cfg: DatasetConfig, model_name: str) -> TaskDefinition:
    """The task of a built-in dataset.name (its preset: template and class names), or of any other
    name (your own task: a template named by dataset.template as preset, or none), with the parts
    the config sets replacing the preset's."""
    if cfg.name in TASKS:
        spec = TASKS[cfg.name]
        if cfg.prompt is None:
            preset = resolve_template(cfg, model_name)
        else:  # the prompt is the user's; the default template still gives the label words
            preset = TEMPLATES[spec.model_templates.get(model_name, spec.template)]
        return define_task(cfg, preset, spec.label_names)
    if cfg.prompt is None and cfg.template is None:
        raise ConfigError(
            "dataset.name",
            cfg.name,
            "one of " + ", ".join(TASKS) + "; or any name with dataset.prompt set, and "
            "dataset.label_words (or dataset.answer_column): your own task",
        )
    preset = _named_template(cfg.template) if cfg.template is not None else None
    return define_task(cfg, preset, None)


@dataclass(frozen=True)
class TextData:
    """A text task's template and its checked examples (labels as class ids), not tokenised:
    the training examples left after carving the validation split, and the held-out splits."""

    template: Template
    train: list[dict[str, Any]]
    heldout: dict[HeldOut, list[dict[str, Any]]]
    generative: bool

    @property
    def num_train(self) -> int:
        return len(self.train)


def read_text_data(cfg: DatasetConfig, model_name: str) -> TextData:
    """The task's template (checked against its fields) and examples, read and checked, with
    the validation split carved from the training examples."""
    task = text_task_definition(cfg, model_name)
    examples, test = load_examples(cfg, task.fields, task.labels)
    template = with_truncated_field(task.template, examples)
    kept, carved = carve_validation(len(examples), cfg.validation_size, cfg.validation_seed)
    train = [examples[i] for i in kept]
    heldout = {"validation": [examples[i] for i in carved], "test": test}
    return TextData(template, train, heldout, generative=task.labels is None)


def build_text_task(
    cfg: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    data: TextData | None = None,
) -> Task:
    """Tokenise the dataset's examples (`data`, else read now) for `tokenizer` (left padding)."""
    if data is None:
        data = read_text_data(cfg, model_name)
    if data.generative:
        return SquadTask(
            data.template,
            tokenizer,
            data.train,
            data.heldout,
            cfg.max_length,
            cfg.eval_batch_size,
            cfg.generation_tokens,
        )
    return LabelWordTask(
        data.template, tokenizer, data.train, data.heldout, cfg.max_length, cfg.eval_batch_size
    )


def _spec(cfg: DatasetConfig) -> TaskSpec:
    if cfg.name not in TASKS:
        raise ConfigError("dataset.name", cfg.name, "one of " + ", ".join(TASKS))
    return TASKS[cfg.name]


class LabelWordTask(Task):
    """Classification by the next-token logits of the label words at the prompt's last position:
    loss is cross-entropy over those logits only, the prediction is their argmax."""

    def __init__(
        self,
        template: Template,
        tokenizer: PreTrainedTokenizerBase,
        train: Sequence[Mapping[str, Any]],
        heldout: Mapping[HeldOut, Sequence[Mapping[str, Any]]],
        max_length: int,
        eval_batch_size: int,
    ) -> None:
        self.template = template
        self.pad_id = tokenizer.pad_token_id
        self.eval_batch_size = eval_batch_size
        self.label_ids = torch.tensor(label_token_ids(template, tokenizer))
        self._train = encode_prompts(template, train, tokenizer, max_length)
        self._train_labels = np.array([e["label"] for e in train], dtype=np.int64)
        # each held-out split in order of length, so evaluation batches carry little padding
        self._heldout: dict[HeldOut, tuple[list[list[int]], np.ndarray]] = {}
        for split, examples in heldout.items():
            if not examples:
                continue
            prompts = encode_prompts(template, examples, tokenizer, max_length)
            order = np.argsort([len(p) for p in prompts], kind="stable")
            labels = np.array([examples[i]["label"] for i in order], dtype=np.int64)
            self._heldout[split] = ([prompts[i] for i in order], labels)

    @property
    def num_train(self) -> int:
        return len(self._train)

    def train_labels(self) -> np.ndarray | None:
        return self._train_labels

    def heldout_splits(self) -> tuple[HeldOut, ...]:
        return tuple(self._heldout)

    def heldout_size(self, split: HeldOut) -> int:
        return len(self._heldout[split][0])

    def lengths(self, indices: Sequence[int]) -> np.ndarray | None:
        return np.array([len(self._train[i]) for i in indices], dtype=np.int64)

    def batch(self, indices: Sequence[int], device: torch.device) -> Batch:
        return self._collate(
            [self._train[i] for i in indices],
            self._train_labels[np.asarray(indices, dtype=np.int64)],
            device,
        )

    def _collate(
        self, prompts: Sequence[list[int]], labels: np.ndarray, device: torch.device
    ) -> Batch:
        input_ids, mask = left_pad(prompts, self.pad_id, device)
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": torch.as_tensor(labels, dtype=torch.long, device=device),
        }

    def label_logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """[batch, classes] float32 logits of the label words after the prompt."""
        last = lm_logits(model, batch["input_ids"], batch["attention_mask"], keep=1)[:, -1]
        return last[:, self.label_ids.to(last.device)].float()

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(self.label_logits(model, batch), batch["labels"], reduction="none")

    @torch.no_grad()
    def evaluate_examples(
        self, model: nn.Module, device: torch.device, split: HeldOut
    ) -> tuple[dict[str, float], np.ndarray]:
        prompts, labels = self._heldout[split]
        loss_sum, flags = 0.0, []
        for start in range(0, len(prompts), self.eval_batch_size):
            stop = start + self.eval_batch_size
            batch = self._collate(prompts[start:stop], labels[start:stop], device)
            logits = self.label_logits(model, batch)
            loss_sum += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            flags.append((logits.argmax(1) == batch["labels"]).cpu().numpy())
        correct = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
        n = len(prompts)
        return {"loss": loss_sum / n, "accuracy": float(correct.sum()) / n}, correct
