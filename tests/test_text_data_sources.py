"""Where a text task's examples come from: the dataset configs, local files (CSV, TSV, JSON
lines, JSON, parquet) with column mappings and label checks, the hub when offline, and the
embedded movie reviews with their fixed split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hiso.data.movie_reviews import TEST_SIZE, data_dir, load_movie_reviews
from hiso.data.sources import (
    Column,
    DatasetFormatError,
    DatasetUnavailableError,
    LabelSet,
    load_examples,
)
from hiso.schema import DataFiles, DatasetConfig
from hiso.tasks.text import TASKS, build_text_task

from text_records import SENTENCES, example, local_config, write_split

CONF = Path(__file__).resolve().parents[1] / "conf"
NAMES = ("negative", "positive")


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
