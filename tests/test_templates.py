"""Golden prompts: every built-in template's exact text and label words on a fixed example (the
templates of ../shared/SPEC.md section 6), written out literally; fields are stripped first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hiso.schema import DataFiles, DatasetConfig
from hiso.tasks.templates import TEMPLATES
from hiso.tasks.text import TASKS, build_text_task

# (dataset, template, record with stray whitespace, exact prompt, class name -> label word)
GOLDEN: list[tuple[str, str, dict[str, Any], str, dict[str, str]]] = [
    (
        "sst2",
        "sst2",
        {"sentence": "a gripping , funny film . ", "label": 1},
        "a gripping , funny film . It was",
        {"negative": " bad", "positive": " good"},
    ),
    (
        "movie-reviews",
        "review",
        {"sentence": " Sharp and funny.\n", "label": 0},
        "Review: Sharp and funny.\nSentiment:",
        {"negative": " negative", "positive": " positive"},
    ),
    (
        "rte",
        "rte",
        {"premise": " The cat sat on the mat. ", "hypothesis": "A cat is sitting.", "label": 0},
        'The cat sat on the mat.\nDoes this mean that "A cat is sitting." is true? Yes or No?\n',
        {"entailment": "Yes", "not_entailment": "No"},
    ),
    (
        "cb",
        "cb",
        {"premise": "It may rain today.", "hypothesis": " It will rain ", "label": 2},
        'Suppose It may rain today. Can we infer that "It will rain"? Yes, No, or Maybe?\n',
        {"entailment": "Yes", "contradiction": "No", "neutral": "Maybe"},
    ),
    (
        "boolq",
        "boolq",
        {"passage": "Water boils at 100 C. ", "question": " does water boil at 100 C ", "label": 1},
        "Water boils at 100 C.\nQuestion: does water boil at 100 C?\nIs that correct? Yes or No?\n",
        {"false": "No", "true": "Yes"},
    ),
    (
        "wic",
        "wic",
        {
            "word": " bank",
            "sentence1": "He sat on the river bank. ",
            "sentence2": "She works at the bank.",
            "label": 0,
        },
        'Does the word "bank" have the same meaning in these two sentences? Yes, No?\n'
        "He sat on the river bank.\nShe works at the bank.\n",
        {"false": "No", "true": "Yes"},
    ),
    (
        "wsc",
        "wsc",
        {
            "text": "Mark told Pete many lies about himself. ",
            "span1_text": "Mark",
            "span2_text": "himself ",
            "label": 1,
        },
        "Mark told Pete many lies about himself.\n"
        'In the previous sentence, does the pronoun "himself" refer to Mark? Yes or No?\n',
        {"false": "No", "true": "Yes"},
    ),
    (
        "multirc",
        "multirc",
        {
            "paragraph": "Sara bought apples and pears. ",
            "question": "What did Sara buy?",
            "answer": " apples ",
            "label": 1,
        },
        "Sara bought apples and pears.\nQuestion: What did Sara buy?\n"
        'I found this answer "apples". Is that correct? Yes or No?\n',
        {"false": "No", "true": "Yes"},
    ),
    (
        "qqp",
        "qqp",
        {
            "question1": "How do I learn Python? ",
            "question2": " What is the best way to learn Python?",
            "label": 1,
        },
        "Question 1: How do I learn Python?\nQuestion 2: What is the best way to learn Python?\n"
        "Are they semantically equivalent? Yes or No?\n",
        {"not_duplicate": "No", "duplicate": "Yes"},
    ),
    (
        "squad",
        "squad",
        {
            "title": "Super_Bowl_50",
            "context": " Super Bowl 50 was played in Santa Clara. ",
            "question": "Where was Super Bowl 50 played? ",
            "answers": {"text": [" Santa Clara ", "Santa Clara, California"]},
        },
        "Title: Super_Bowl_50\nContext: Super Bowl 50 was played in Santa Clara.\n"
        "Question: Where was Super Bowl 50 played?\nAnswer concisely in a few words:",
        {},
    ),
]
SQUAD_TARGET = " Santa Clara\n"  # the first gold answer, stripped, then the stop newline

CASES = [pytest.param(*case, id=case[1]) for case in GOLDEN]


def test_every_template_has_a_golden_case() -> None:
    assert sorted(template for _, template, *_ in GOLDEN) == sorted(TEMPLATES)


@pytest.mark.parametrize(("dataset", "template", "record", "prompt", "words"), CASES)
def test_template_renders_the_exact_prompt(
    dataset: str, template: str, record: dict, prompt: str, words: dict
) -> None:
    assert TEMPLATES[template].render(record)[0] == prompt


@pytest.mark.parametrize(("dataset", "template", "record", "prompt", "words"), CASES)
def test_label_words_follow_the_class_order(
    dataset: str, template: str, record: dict, prompt: str, words: dict
) -> None:
    names = TASKS[dataset].label_names or ()
    assert dict(zip(names, TEMPLATES[template].label_words, strict=True)) == words
    assert list(names) == list(words)


@pytest.mark.parametrize(("dataset", "template", "record", "prompt", "words"), CASES)
def test_the_task_trains_on_the_golden_text(
    tiny_lm, tmp_path: Path, dataset: str, template: str, record: dict, prompt: str, words: dict
) -> None:
    """Through the whole pipeline: a local file, the task's tokens decoded back to text."""
    _, tokenizer = tiny_lm
    path = tmp_path / "split.jsonl"
    path.write_text(json.dumps(record) + "\n")
    files = DataFiles(train=str(path), test=str(path))
    cfg = DatasetConfig(
        name=dataset, source="local", data_files=files, template=template, max_length=256
    )
    task = build_text_task(cfg, tokenizer, "tiny")
    if dataset == "squad":
        (prompt_ids, answer_ids), *_ = task._train
        assert tokenizer.decode(answer_ids) == SQUAD_TARGET
        assert task._heldout["test"][1] == [["Santa Clara", "Santa Clara, California"]]
    else:
        prompt_ids = task._train[0]
        assert task.train_labels().tolist() == [record["label"]]
        assert [tokenizer.decode([i]) for i in task.label_ids] == list(words.values())
    assert tokenizer.decode(prompt_ids, skip_special_tokens=True) == prompt
