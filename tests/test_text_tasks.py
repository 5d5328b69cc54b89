"""Text tasks on tiny OPT/LLaMA models: templates, label-word loss and accuracy, truncation,
SQuAD generation and F1, and the embedded, local and hub data sources."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from hiso.data.movie_reviews import TEST_SIZE, data_dir, load_movie_reviews
from hiso.data.sources import (
    Column,
    DatasetFormatError,
    DatasetUnavailableError,
    LabelSet,
    load_examples,
)
from hiso.schema import ConfigError, DataFiles, DatasetConfig
from hiso.tasks.squad import normalize_answer, squad_f1
from hiso.tasks.templates import (
    TEMPLATES,
    Template,
    TemplateError,
    encode_prompts,
    label_token_ids,
)
from hiso.tasks.text import TASKS, LabelWordTask, build_text_task, resolve_template

CPU = torch.device("cpu")
CONF = Path(__file__).resolve().parents[1] / "conf"
NAMES = ("negative", "positive")
SENTENCES = [e["sentence"] for e in load_movie_reviews()["train"][300:340]]


def example(task: str, i: int) -> dict[str, Any]:
    """A record with every field of `task`, built from real sentences; labels cycle over classes."""
    spec = TASKS[task]
    record: dict[str, Any] = {
        f: SENTENCES[(i + k) % len(SENTENCES)] for k, f in enumerate(spec.fields)
    }
    if spec.label_names is None:
        words = record["context"].split()
        record["answers"] = {"text": [" ".join(words[1:3]), words[0]], "answer_start": [0, 0]}
    else:
        record["label"] = i % len(spec.label_names)
    return record


def write_split(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def local_config(
    task: str, tmp_path: Path, n_train: int = 6, n_test: int = 5, **kw: Any
) -> DatasetConfig:
    files = {
        split: write_split(tmp_path / f"{task}-{split}.jsonl", [example(task, i) for i in range(n)])
        for split, n in (("train", n_train), ("test", n_test))
    }
    kw.setdefault("max_length", 48)
    kw.setdefault("generation_tokens", 3)
    return DatasetConfig(
        name=task, source="local", data_files=DataFiles(**files), eval_batch_size=2, **kw
    )


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


# ---- data sources ----


@pytest.mark.parametrize("name", sorted(TASKS))
def test_dataset_configs_fit_the_schema(name: str) -> None:
    raw = OmegaConf.load(CONF / f"dataset/{name}.yaml")
    cfg = OmegaConf.merge(OmegaConf.structured(DatasetConfig), raw)
    assert cfg.name == name and cfg.kind == "text"
    assert (cfg.source == "embedded") == (name == "movie-reviews")
    if cfg.source == "hub":
        assert cfg.hub_path


def test_squad_defaults_follow_the_papers() -> None:
    cfg = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig), OmegaConf.load(CONF / "dataset/squad.yaml")
    )
    assert (cfg.max_train, cfg.max_test) == (1000, 100)


def test_local_csv_with_column_mapping(tiny_lm, tmp_path: Path) -> None:
    _, tokenizer = tiny_lm
    rows = [
        "text,sentiment",
        *(
            f'"{s.replace(chr(34), "")}",{"positive" if i % 2 else "0"}'
            for i, s in enumerate(SENTENCES[:6])
        ),
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    shutil.copy(tmp_path / "train.csv", tmp_path / "test.csv")
    files = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}
    cfg = DatasetConfig(
        name="sst2",
        source="local",
        data_files=DataFiles(**files),
        columns={"sentence": "text", "label": "sentiment"},
        max_test=4,
    )
    task = build_text_task(cfg, tokenizer, "tiny")
    assert task.num_train == 6 and len(task._heldout["test"][0]) == 4
    assert task.train_labels().tolist() == [0, 1, 0, 1, 0, 1]


def test_missing_column_names_column_file_and_present_columns(tiny_lm, tmp_path: Path) -> None:
    _, tokenizer = tiny_lm
    cfg = local_config("rte", tmp_path, columns={"hypothesis": "claim"})
    with pytest.raises(
        DatasetFormatError, match=r"rte-train.jsonl.*'claim'.*'hypothesis'.*present.*'premise'"
    ):
        build_text_task(cfg, tokenizer, "tiny")


def test_label_outside_the_label_set_is_named(tiny_lm, tmp_path: Path) -> None:
    _, tokenizer = tiny_lm
    cfg = local_config("boolq", tmp_path)
    records = [
        example("boolq", 0),
        {**example("boolq", 1), "label": 7},
        {**example("boolq", 2), "label": "maybe"},
    ]
    write_split(Path(cfg.data_files.test), records)
    with pytest.raises(
        DatasetFormatError, match=r"boolq-test.jsonl: 2 .*line 2: 7; line 3: 'maybe'"
    ):
        build_text_task(cfg, tokenizer, "tiny")


def test_local_formats_read_alike(tmp_path: Path) -> None:
    """CSV, TSV, JSON lines, a JSON array and parquet give the same records; labels may be ids,
    integral floats, bools or label names."""
    import pyarrow
    import pyarrow.parquet

    sentences = [s.replace('"', "") for s in SENTENCES[:6]]
    native = [0, 1.0, True, "negative", " Positive ", "1.0"]  # JSON keeps types
    text = ["0", "1.0", "1", "negative", " Positive ", "1"]  # CSV and TSV are text
    rows = [{"text": s, "y": y} for s, y in zip(sentences, native, strict=True)]
    files = {
        "csv": "text,y\n" + "".join(f'"{s}",{y}\n' for s, y in zip(sentences, text, strict=True)),
        "tsv": "text\ty\n" + "".join(f"{s}\t{y}\n" for s, y in zip(sentences, text, strict=True)),
        "jsonl": "".join(json.dumps(r) + "\n\n" for r in rows),
        "json": json.dumps(rows, indent=1),
    }
    for suffix, content in files.items():
        (tmp_path / f"data.{suffix}").write_text(content, encoding="utf-8")
    table = pyarrow.table({"text": sentences, "y": [1.0, 0.0] * 3})
    pyarrow.parquet.write_table(table, tmp_path / "data.parquet")
    expected = [
        {"sentence": s, "label": y} for s, y in zip(sentences, [0, 1, 1, 0, 1, 1], strict=True)
    ]
    for suffix in (*files, "parquet"):
        if suffix == "parquet":
            expected = [{"sentence": s, "label": [1, 0][i % 2]} for i, s in enumerate(sentences)]
        path = str(tmp_path / f"data.{suffix}")
        cfg = DatasetConfig(
            name="sst2",
            source="local",
            data_files=DataFiles(train=path, test=path),
            columns={"sentence": "text", "label": "y"},
        )
        fields = {"sentence": Column("text", "test"), "label": Column("y", "test")}
        train, test = load_examples(cfg, fields, LabelSet((" bad", " good"), NAMES))
        assert train == expected and test == expected, suffix


def test_missing_local_file_and_split(tmp_path: Path) -> None:
    cfg = DatasetConfig(
        name="sst2", source="local", data_files=DataFiles(train=str(tmp_path / "x.csv"))
    )
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        build_text_task(cfg, None, "tiny")
    cfg = DatasetConfig(name="sst2", source="local", data_files=DataFiles())
    with pytest.raises(DatasetUnavailableError, match=r"dataset\.data_files\.train"):
        build_text_task(cfg, None, "tiny")


def test_hub_offline_names_the_local_fallback() -> None:
    cfg = DatasetConfig(name="sst2", source="hub", hub_path="nyu-mll/glue", hub_name="sst2")
    with pytest.raises(DatasetUnavailableError, match=r"'sst2'.*nyu-mll/glue") as err:
        build_text_task(cfg, None, "tiny")
    assert "dataset.source=local dataset.data_files.train=" in str(err.value)


def test_embedded_movie_reviews_fixed_split(tmp_path: Path, monkeypatch) -> None:
    splits = load_movie_reviews()
    assert len(splits["test"]) == TEST_SIZE and len(splits["train"]) == 10605 - 37 - TEST_SIZE
    for records in splits.values():
        assert {r["label"] for r in records} == {0, 1}
    assert not {r["id"] for r in splits["train"]} & {r["id"] for r in splits["test"]}
    sdist = next(p for p in data_dir().glob("*.tar.gz") if p.name.lower().startswith("vader"))
    shutil.copy(sdist, tmp_path)
    monkeypatch.setenv("HISO_DATA_DIR", str(tmp_path))
    assert load_movie_reviews() == splits  # parsed afresh from the sdist: the same split
    assert (tmp_path / "movie_reviews.json").is_file()


def test_embedded_data_missing_names_the_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HISO_DATA_DIR", str(tmp_path))
    with pytest.raises(
        RuntimeError, match=r"make setup.*pip download --no-deps --no-binary :all: vadersentiment"
    ):
        load_movie_reviews()


def test_movie_reviews_task_builds_from_embedded_data(tiny_lm) -> None:
    _, tokenizer = tiny_lm
    task = build_text_task(
        DatasetConfig(name="movie-reviews", max_train=50, max_test=10), tokenizer, "tiny"
    )
    # 10% of the 50 training sentences are carved off as the validation split
    assert task.num_train == 45 and set(task.train_labels().tolist()) == {0, 1}
    assert task.heldout_splits() == ("validation", "test")
    assert len(task._heldout["validation"][0]) == 5
