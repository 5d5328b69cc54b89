"""Text-task records built from real movie-review sentences, with every field of a task, and
local data files of them: what the text-task and data-source tests build their tasks from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hiso.data.movie_reviews import load_movie_reviews
from hiso.schema import DataFiles, DatasetConfig
from hiso.tasks.text import TASKS

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
