"""Your own task: a CSV of real movie-review sentences under its own columns, prompt, label words
and label strings runs end to end on a tiny OPT checkpoint, labelled by its own name; each kind of
mistake in it stops `hiso-run` before the model loads; generative tasks and built-in presets go
through the same definition."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import transformers
from test_cli import hiso_run

from hiso import cli
from hiso.config import compose_config
from hiso.data.movie_reviews import load_movie_reviews
from hiso.data.sources import DatasetFormatError
from hiso.schema import ConfigError, DataFiles, DatasetConfig
from hiso.tasks import build_task, read_task_data
from hiso.tasks.custom import prompt_fields, with_truncated_field
from hiso.tasks.squad import SquadTask
from hiso.tasks.templates import TEMPLATES, Template
from hiso.tasks.text import LabelWordTask, build_text_task
from hiso.tracking.records import read_jsonl

import lm_fixtures

PROMPT = "Review: {review} Verdict:"
STARS = ("neg", "pos")  # the label strings, in class order
N_TRAIN, N_TEST = 40, 15  # an odd test split: swapped classes cannot score the same accuracy


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = lm_fixtures.tiny_opt()
    return lm_fixtures.save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("tiny-opt"))


def reviews(split: str, n: int, start: int = 0) -> list[tuple[str, str]]:
    """(sentence, star string) pairs of real movie reviews, sentences with surrounding spaces."""
    rows = load_movie_reviews()[split][start : start + n]
    return [(f" {r['sentence']} ", STARS[r["label"]]) for r in rows]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["review,stars", *(f'"{s.replace(chr(34), "")}",{y}' for s, y in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_csv(tmp_path / "train.csv", reviews("train", N_TRAIN)),
        "test": write_csv(tmp_path / "test.csv", reviews("test", N_TEST)),
    }


def own_task(checkpoint: Path, files: dict[str, Path], *extra: str) -> list[str]:
    """Your own task over the default dataset section (the CLI's config search path is the
    installed package's; tests that compose in-process add the dataset=custom preset)."""
    return [
        "dataset.name=my-reviews",
        "dataset.source=local",
        f"dataset.data_files.train={files['train']}",
        f"dataset.data_files.test={files['test']}",
        f"dataset.prompt='{PROMPT}'",
        "dataset.label_words=[' bad',' good']",
        "dataset.label_column=stars",
        "dataset.label_names=[neg,pos]",
        "dataset.validation_size=0",
        "dataset.max_length=256",
        f"model.path={checkpoint}",
        "model.name=tiny",
        "federation.num_clients=2",
        "federation.clients_per_round=1",
        "federation.rounds=2",
        "federation.eval_every=0",
        "optim.batch_size=4",
        "algo.num_perturbations=2",
        "logger=none",
        *extra,
    ]


def accuracy_by_hand(checkpoint: Path, rows: list[tuple[str, str]]) -> float:
    """The checkpoint's accuracy on `rows`, prompted and scored here from the task's description
    alone: the prompt's text, the logits of ' bad' / ' good' at its last position."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    words = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" bad", " good")]
    correct = 0
    for sentence, stars in rows:
        ids = tokenizer(f"Review: {sentence.replace(chr(34), '').strip()} Verdict:")["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1, words]
        correct += int(logits.argmax()) == STARS.index(stars)
    return correct / len(rows)


# ---- end to end ----


def test_the_task_renders_its_own_prompt_words_and_labels(
    tiny_checkpoint: Path, files: dict[str, Path]
) -> None:
    cfg = compose_config(["dataset=custom", *own_task(tiny_checkpoint, files)])
    assert cfg.dataset.source == "local" and cfg.dataset.max_test is None
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    task = build_task(cfg, tokenizer, read_task_data(cfg))
    assert isinstance(task, LabelWordTask)
    rows = reviews("train", N_TRAIN)
    for i in (0, 7):
        text = tokenizer.decode(task._train[i], skip_special_tokens=True)
        assert text == f"Review: {rows[i][0].replace(chr(34), '').strip()} Verdict:"
    assert [tokenizer.decode([i]) for i in task.label_ids] == [" bad", " good"]
    assert task.train_labels().tolist() == [STARS.index(y) for _, y in rows]


def test_the_task_runs_end_to_end_under_its_own_name(
    tiny_checkpoint: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    result = hiso_run(*own_task(tiny_checkpoint, files), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert run_dir.name.endswith("_hiso_tiny_my-reviews")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "my-reviews"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    tested = [r for r in rows if "test_accuracy" in r]
    assert [r["round"] for r in tested] == [0, 2]
    expected = accuracy_by_hand(tiny_checkpoint, reviews("test", N_TEST))
    assert tested[0]["test_accuracy"] == pytest.approx(expected)
    assert summary["final_test_accuracy"] == tested[-1]["test_accuracy"]


# ---- mistakes stop the command before the model loads ----


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded for a bad input")

    monkeypatch.setattr("hiso.models.build_model", fail)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fail)


IDS = [(s, str(STARS.index(y))) for s, y in reviews("train", N_TRAIN)]
MISTAKES = [
    pytest.param(
        ("dataset.prompt='Review: {reveiw} Verdict:'",),
        {},
        ("train.csv", "column 'reveiw'", "dataset.prompt", "present: ['review', 'stars']"),
        id="unknown-column",
    ),
    pytest.param(
        ("dataset.label_words=[' bad',' xylophonically']",),
        {},
        ("dataset.label_words", "' xylophonically' is", "9 tokens (' ' + 'x' + ", "one token"),
        id="multi-token-word",
    ),
    pytest.param(
        (),
        {"test": [("Fine.", "pos"), ("So so.", "meh"), ("Awful.", "neg")]},
        ("test.csv", "line 3: 'meh'", "outside the label set", "no label word"),
        id="label-without-word",
    ),
    pytest.param(
        ("dataset.label_names=null",),
        {"train": IDS, "test": [("Fine.", "1"), ("Awful.", "2")]},
        ("test.csv", "line 3: '2'", "no label word", "0..1"),
        id="class-id-without-word",
    ),
    pytest.param(
        ("dataset.label_names=null",),
        {},
        ("train.csv", "line 2", "is a string", "dataset.label_names is not set", "['neg', 'pos']"),
        id="string-labels-without-names",
    ),
    pytest.param(
        ("dataset.label_names=[neg,meh,pos]",),
        {},
        ("dataset.label_names=['neg', 'meh', 'pos']", "one label string per label word"),
        id="names-and-words-differ",
    ),
    pytest.param(
        ("dataset.prompt=null",),
        {},
        ("dataset.name='my-reviews'", "dataset.prompt"),
        id="no-prompt",
    ),
    pytest.param(
        ("dataset.prompt='{review'",),
        {},
        ("dataset.prompt='{review'", "format string"),
        id="broken-prompt",
    ),
    pytest.param(
        ("dataset.prompt='{review} ({stars})'",),
        {},
        ("dataset.prompt=", "does not show the labels", "'stars'"),
        id="prompt-shows-the-label",
    ),
    pytest.param(
        ("dataset.label_words=[' bad']",),
        {},
        ("dataset.label_words=[' bad']", "two or more"),
        id="one-word",
    ),
    pytest.param(
        ("dataset.label_column=verdict",),
        {},
        ("train.csv", "column 'verdict'", "dataset.label_column"),
        id="label-column",
    ),
]


@pytest.mark.parametrize(("extra", "rows", "expect"), MISTAKES)
def test_a_mistake_stops_before_the_model_loads(
    extra: tuple[str, ...],
    rows: dict[str, list[tuple[str, str]]],
    expect: tuple[str, ...],
    tiny_checkpoint: Path,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_model: None,
) -> None:
    for split, content in rows.items():
        write_csv(files[split], content)
    monkeypatch.chdir(tmp_path)
    args = [*own_task(tiny_checkpoint, files, *extra), f"hydra.run.dir={tmp_path}/run"]
    monkeypatch.setattr(sys, "argv", ["hiso-run", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    message = err.strip()
    assert message.startswith("hiso-run: ") and "\n" not in message, err
    assert "Traceback" not in err
    for expected in expect:
        assert expected in message, (expected, message)
    assert not (tmp_path / "run").exists()


def test_the_multi_token_message_shows_the_tokens(tiny_checkpoint: Path) -> None:
    """The pieces the message names are the tokenizer's own, and a word that is one token with
    its leading space is suggested."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    ids = tokenizer(" xylophonically", add_special_tokens=False)["input_ids"]
    pieces = " + ".join(repr(tokenizer.decode([i])) for i in ids)
    template = Template(
        "mine", PROMPT, (" bad", " xylophonically"), "review", "dataset.label_words"
    )
    from hiso.tasks.templates import TemplateError, label_token_ids

    with pytest.raises(TemplateError) as err:
        label_token_ids(template, tokenizer)
    assert f"' xylophonically' is {len(ids)} tokens ({pieces})" in str(err.value)
    assert len(tokenizer("good", add_special_tokens=False)["input_ids"]) > 1
    with pytest.raises(TemplateError, match=r"'good' is \d+ tokens.*\(' good' is one"):
        label_token_ids(Template("mine", PROMPT, (" bad", "good"), "review"), tokenizer)


# ---- the same definition: generative tasks, built-in presets, prompts ----


def test_a_generative_task_reads_its_answer_column(tiny_lm, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm
    sentences = [s.strip() for s, _ in reviews("train", 6)]
    rows = [
        {"passage": s, "ask": "What is the first word?", "gold": s.split()[0]} for s in sentences
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DatasetConfig(
        name="first-word",
        source="local",
        data_files=DataFiles(train=str(path), test=str(path)),
        prompt="{passage}\nQ: {ask}\nA:",
        answer_column="gold",
        max_length=128,
        validation_size=0,
        generation_tokens=3,
    )
    task = build_text_task(cfg, tokenizer, "tiny")
    assert isinstance(task, SquadTask) and task.train_labels() is None
    prompt_ids, answer_ids = task._train[0]
    text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    assert text == f"{sentences[0]}\nQ: What is the first word?\nA:"
    assert tokenizer.decode(answer_ids) == f" {rows[0]['gold']}\n"
    metrics = task.evaluate(model, torch.device("cpu"), "test")
    assert 0.0 <= metrics["f1"] <= 1.0
    rows[4]["gold"] = " "
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetFormatError, match=r"qa.jsonl: line 5: column 'gold' holds ' '"):
        build_text_task(cfg, tokenizer, "tiny")


def test_a_built_in_task_is_a_preset_whose_parts_can_change(tiny_lm, tmp_path: Path) -> None:
    """sst2 with other label words keeps its prompt and class names; with its own prompt it keeps
    its label words; each part the config sets replaces only that part."""
    _, tokenizer = tiny_lm
    path = tmp_path / "sst2.csv"
    path.write_text("sentence,label\n a gripping film. ,positive\nflat.,negative\n")
    base = {"name": "sst2", "source": "local", "data_files": DataFiles(str(path), str(path))}
    words = build_text_task(
        DatasetConfig(**base, label_words=[" negative", " positive"]), tokenizer, "tiny"
    )
    assert tokenizer.decode(words._train[0], skip_special_tokens=True) == "a gripping film. It was"
    assert [tokenizer.decode([i]) for i in words.label_ids] == [" negative", " positive"]
    assert words.train_labels().tolist() == [1, 0]
    prompt = build_text_task(
        DatasetConfig(**base, prompt="Review: {sentence}\nSentiment:"), tokenizer, "tiny"
    )
    assert (
        tokenizer.decode(prompt._train[0], skip_special_tokens=True)
        == "Review: a gripping film.\nSentiment:"
    )
    assert [tokenizer.decode([i]) for i in prompt.label_ids] == list(TEMPLATES["sst2"].label_words)
    with pytest.raises(ConfigError, match=r"dataset\.label_words=.*2 for \['negative', 'positive'"):
        build_text_task(DatasetConfig(**base, label_words=["Yes", "No", "Maybe"]), tokenizer, "x")


def test_a_named_template_is_a_preset_for_any_dataset(tiny_lm, tmp_path: Path) -> None:
    _, tokenizer = tiny_lm
    path = tmp_path / "pairs.csv"
    path.write_text("premise,hypothesis,label\nIt rains.,It is wet.,0\nIt is sunny.,It snows.,1\n")
    cfg = DatasetConfig(
        name="my-pairs", source="local", data_files=DataFiles(str(path), str(path)), template="rte"
    )
    task = build_text_task(cfg, tokenizer, "tiny")
    assert (
        tokenizer.decode(task._train[1], skip_special_tokens=True)
        == TEMPLATES["rte"].render({"premise": "It is sunny.", "hypothesis": "It snows."})[0]
    )
    assert task.train_labels().tolist() == [0, 1]


def test_prompt_fields_and_the_truncated_field() -> None:
    assert prompt_fields("{a} and {b}, {a} {{literal}}") == ("a", "b")
    for bad in ("{a", "{}", "{0}", "{a!r}", "{a:>9}", "no columns"):
        with pytest.raises(ConfigError, match=r"dataset\.prompt"):
            prompt_fields(bad)
    template = Template("mine", "{title}: {body} It was", (" bad", " good"), "")
    records = [{"title": "A long title here", "body": "short"}, {"title": "T", "body": "x" * 30}]
    assert with_truncated_field(template, records).truncate == "body"
    assert with_truncated_field(template, records[:1]).truncate == "title"
    fixed = Template("mine", "{title}: {body}", (), "title")
    assert with_truncated_field(fixed, records) is fixed
