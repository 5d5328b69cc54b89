"""Your own text task from the dataset config: `dataset.prompt` (a format string over the data's
columns), `dataset.label_words` (one per class) with `dataset.label_column` and
`dataset.label_names`, or `dataset.answer_column` for a generative task.

A built-in task is the same definition with every part preset (its template, class names and
fields); each part set in the config replaces the preset's. All of it is checked from the config
alone, before any data or model loads."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hiso.data.sources import Column, LabelSet
from hiso.schema import ConfigError, DatasetConfig
from hiso.tasks.templates import Template

LABEL = "label"  # the record field a label-word task reads its class from
ANSWERS = "answers"  # the record field a generative task reads its gold answers from
PROMPT_ALLOWED = (
    "a Python format string over the dataset's columns, e.g. '{text} It was': each column in "
    "single braces, no positions, conversions or format specs, literal braces doubled"
)


@dataclass(frozen=True)
class TaskDefinition:
    """What a text task reads and how it prompts: the template (no label words: generative), each
    record field with its column, and the classes (None: generative)."""

    template: Template
    fields: dict[str, Column]
    labels: LabelSet | None


def prompt_fields(prompt: str) -> tuple[str, ...]:
    """The columns a prompt names, in order, each once; ConfigError for a prompt that is no
    usable format string or names no column."""
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as err:
        raise ConfigError("dataset.prompt", prompt, f"{PROMPT_ALLOWED} ({err})") from None
    fields: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or spec or conversion:
            raise ConfigError("dataset.prompt", prompt, f"{PROMPT_ALLOWED}; a field here is not")
        if name not in fields:
            fields.append(name)
    if not fields:
        raise ConfigError("dataset.prompt", prompt, f"{PROMPT_ALLOWED}; this one names no column")
    return tuple(fields)


def define_task(
    cfg: DatasetConfig, preset: Template | None, preset_names: Sequence[str] | None
) -> TaskDefinition:
    """The task of `cfg` over a preset: a built-in task's template and class names, a template
    named by dataset.template (no class names), or nothing (the config sets every part)."""
    own_prompt = cfg.prompt is not None
    if cfg.prompt is not None:
        prompt = cfg.prompt
    elif preset is not None:
        prompt = preset.prompt
    else:
        raise ConfigError("dataset.prompt", None, PROMPT_ALLOWED)
    names_in_prompt = prompt_fields(prompt)
    generative = cfg.answer_column is not None or (
        cfg.label_words is None and preset is not None and not preset.label_words
    )
    if generative and cfg.label_names is not None:
        raise ConfigError(
            "dataset.label_names", list(cfg.label_names), "null for a generative task (no classes)"
        )
    labels = None if generative else _labels(cfg, preset, preset_names)
    fields = _fields(cfg, names_in_prompt, own_prompt, generative)
    truncate = "" if own_prompt or preset is None else preset.truncate
    template = Template(
        name=cfg.name if own_prompt or preset is None else preset.name,
        prompt=prompt,
        label_words=labels.words if labels else (),
        truncate=truncate,
        words_from="dataset.label_words" if cfg.label_words is not None else "",
    )
    return TaskDefinition(template, fields, labels)


def _labels(
    cfg: DatasetConfig, preset: Template | None, preset_names: Sequence[str] | None
) -> LabelSet:
    if cfg.label_words is not None:
        words = tuple(cfg.label_words)
    elif preset is not None:
        words = preset.label_words
    else:
        raise ConfigError(
            "dataset.label_words",
            None,
            'one word per class, in class order, e.g. \'[" bad", " good"]\'; or '
            "dataset.answer_column=<column> for a generative task",
        )
    if cfg.label_names is not None:
        names: tuple[str, ...] | None = tuple(cfg.label_names)
        if len(names) != len(words):
            raise ConfigError(
                "dataset.label_names",
                list(names),
                f"one label string per label word, in class order: {len(words)} for {list(words)}",
            )
    elif preset_names is not None:
        names = tuple(preset_names)
        if len(names) != len(words):
            raise ConfigError(
                "dataset.label_words",
                list(words),
                f"one word per class of dataset {cfg.name!r}: {len(names)} for {list(names)} "
                "(or dataset.label_names for other classes)",
            )
    else:
        names = None
    return LabelSet(words, names)


def _fields(
    cfg: DatasetConfig, in_prompt: Sequence[str], own_prompt: bool, generative: bool
) -> dict[str, Column]:
    """Each record field with its column: the prompt's, then the label or the answers."""
    target, config_field = (
        (ANSWERS, "dataset.answer_column") if generative else (LABEL, "dataset.label_column")
    )
    for name, column in cfg.columns.items():
        if name not in (*in_prompt, target):
            raise ConfigError(
                f"dataset.columns.{name}",
                column,
                f"a key that is a field of dataset {cfg.name!r}: "
                + ", ".join((*in_prompt, target)),
            )
    fields = {name: _prompt_column(cfg, name, own_prompt) for name in in_prompt}
    given = cfg.answer_column if generative else cfg.label_column
    default = ANSWERS if generative else LABEL
    mapped = cfg.columns.get(target)
    if mapped is not None and given not in (None, default, mapped):
        raise ConfigError(
            config_field,
            given,
            f"the column +dataset.columns.{target}={mapped!r} names (set one of the two)",
        )
    column = mapped or given or default
    what = "gold answers" if generative else "labels"
    if target in fields or column in [c.name for c in fields.values()]:
        shown = target if target in fields else column
        key, value = ("dataset.prompt", cfg.prompt) if own_prompt else (config_field, given)
        raise ConfigError(
            key, value, f"a prompt that does not show the {what}: it shows {shown!r}, the {what}"
        )
    fields[target] = Column(column, f"{config_field}; set it to the column of the {what}")
    return fields


def _prompt_column(cfg: DatasetConfig, name: str, own_prompt: bool) -> Column:
    if name in cfg.columns:
        return Column(cfg.columns[name], f"task field {name!r}, from +dataset.columns.{name}")
    if own_prompt:
        return Column(name, "named in dataset.prompt")
    return Column(
        name, f"task field {name!r}; map a column to it with +dataset.columns.{name}=<column>"
    )


def with_truncated_field(template: Template, records: Sequence[Mapping[str, Any]]) -> Template:
    """`template` shortening, when a prompt is too long, the field with the longest text over
    `records` (the first in the prompt on a tie); unchanged when it names one already."""
    if template.truncate:
        return template
    fields = [f for _, f, _, _ in string.Formatter().parse(template.prompt) if f is not None]
    length = {f: sum(len(str(r[f]).strip()) for r in records) for f in fields}
    return replace(template, truncate=max(fields, key=lambda f: (length[f], -fields.index(f))))
