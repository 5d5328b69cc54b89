"""Where text examples come from: the embedded movie reviews, local csv/json/parquet files, or
the Hugging Face hub. Every source yields plain records keyed by the task's field names, read and
checked before any model loads: a broken file, a missing column, a bad label or an empty answer is
reported with the file and the line (or row) where it is."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from hiso.data.movie_reviews import load_movie_reviews
from hiso.hub import ONLINE_HINT, hub_offline
from hiso.schema import ConfigError, DatasetConfig, SetupError

Records = list[dict[str, Any]]
FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
LOCAL_HINT = "dataset.source=local dataset.data_files.train=<file> dataset.data_files.test=<file>"
SHOWN_ROWS = 5  # bad rows named in one message
NOT_TEXT = ("label", "answers")  # the record fields that are no prompt text


class DatasetUnavailableError(SetupError, RuntimeError):
    """The dataset cannot be read from its configured source."""


class DatasetFormatError(SetupError, ValueError):
    """The examples are unreadable, lack a needed column or carry labels outside the label set."""


@dataclass(frozen=True)
class Column:
    """Where a task field is read from: the data's column, and what asks for it with the remedy
    when it is missing, as a message says it ("named in dataset.prompt; ...")."""

    name: str
    why: str


@dataclass(frozen=True)
class LabelSet:
    """The classes of a label-word task, one per label word: a label is a class id, or with
    `names` one of the label strings (any case), given in class order."""

    words: tuple[str, ...]
    names: tuple[str, ...] | None = None


@dataclass
class Split:
    """The records of one split and where they came from, to name a bad one: `lines[i]` is the
    line of a text file record i starts on; without lines, records count as rows from 1."""

    origin: str
    records: Records
    lines: list[int] | None = None

    def where(self, i: int) -> str:
        return f"line {self.lines[i]}" if self.lines is not None else f"row {i + 1}"

    def head(self, limit: int | None) -> Split:
        lines = self.lines[:limit] if self.lines is not None else None
        return Split(self.origin, self.records[:limit], lines)


def load_examples(
    cfg: DatasetConfig, fields: Mapping[str, Column], labels: LabelSet | None
) -> tuple[Records, Records]:
    """(train, test) records holding `fields`, each read from its column (with `labels`, the
    field "label" becomes a class id; a field "answers" must hold a gold answer), each split cut
    to its first cfg.max_train / cfg.max_test examples."""
    if cfg.source == "embedded":
        if cfg.name != "movie-reviews":
            raise DatasetUnavailableError(
                f"dataset.source=embedded exists only for movie-reviews, not {cfg.name!r}; "
                f"use the hub or {LOCAL_HINT}."
            )
        raw = load_movie_reviews()
        splits = {split: Split(f"embedded movie reviews [{split}]", raw[split]) for split in raw}
    elif cfg.source == "local":
        splits = {split: _read_local(cfg, split) for split in ("train", "test")}
    else:
        splits = _read_hub(cfg)
    out = []
    for split, limit in (("train", cfg.max_train), ("test", cfg.max_test)):
        rows = splits[split].head(limit)
        if not rows.records:
            raise DatasetFormatError(f"{rows.origin}: the {split} split has no examples.")
        records = _select(rows, fields)
        if labels is not None:
            _map_labels(records, rows, labels, fields["label"].name)
        if "answers" in fields:
            _check_answers(records, rows, fields["answers"].name)
        out.append(records)
    return out[0], out[1]


def _read_local(cfg: DatasetConfig, split: str) -> Split:
    key = f"dataset.data_files.{split}"
    path = getattr(cfg.data_files, split)
    if path is None:
        raise DatasetUnavailableError(f"dataset {cfg.name!r}: {key} is not set; give {LOCAL_HINT}.")
    file = Path(path)
    kind = FILE_FORMATS.get(file.suffix.lower())
    if kind is None:
        raise ConfigError(key, path, "a file ending in " + ", ".join(FILE_FORMATS))
    if not file.is_file():
        problem = "is a directory" if file.is_dir() else "does not exist"
        raise DatasetUnavailableError(f"{key}: file {path!r} {problem}.")
    if kind == "parquet":
        return _read_parquet(file, path)
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetFormatError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{err.object[err.start]:02x}); "
            "save the file as UTF-8."
        ) from None
    if not text.strip():
        raise DatasetFormatError(f"{path}: the file is empty.")
    if kind == "csv":
        return _read_csv(text, path, "\t" if file.suffix.lower() == ".tsv" else ",")
    return _read_json(text, path)


def _read_csv(text: str, origin: str, delimiter: str) -> Split:
    """A header line naming the columns, then one record per line (blank lines skipped)."""
    # a cell may be as long as the file (the csv module's default limit is 131,072 characters)
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records: Records = []
    lines: list[int] = []
    start = 1
    try:
        for row in reader:
            if row:
                if header is None:
                    header = row
                    repeated = sorted({c for c in row if row.count(c) > 1})
                    if repeated:
                        raise DatasetFormatError(
                            f"{origin}: line {start}: the header repeats column(s) {repeated}."
                        )
                elif len(row) != len(header):
                    raise DatasetFormatError(
                        f"{origin}: line {start} has {len(row)} fields, the header "
                        f"has {len(header)} ({delimiter!r}-separated: {header})."
                    )
                else:
                    records.append(dict(zip(header, row, strict=True)))
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise DatasetFormatError(f"{origin}: line {start} is not valid CSV: {err}.") from None
    if not records:
        raise DatasetFormatError(f"{origin}: the file has a header line but no rows.")
    return Split(origin, records, lines)


def _read_json(text: str, origin: str) -> Split:
    """A JSON array of objects, or JSON lines: one object per line (blank lines skipped)."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        for i, record in enumerate(whole):
            if not isinstance(record, dict):
                raise DatasetFormatError(
                    f"{origin}: row {i + 1} of the JSON array is {_kind(record)}, "
                    "not an object of fields."
                )
        return Split(origin, whole)
    if isinstance(whole, dict):
        return Split(origin, [whole])
    records: Records = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetFormatError(
                f"{origin}: line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                "expected one JSON object per line or a JSON array of objects."
            ) from None
        if not isinstance(record, dict):
            raise DatasetFormatError(
                f"{origin}: line {number} holds {_kind(record)}, not a JSON object of fields."
            )
        records.append(record)
        lines.append(number)
    return Split(origin, records, lines)


def _read_parquet(file: Path, origin: str) -> Split:
    import pyarrow
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(file)
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        raise DatasetFormatError(
            f"{origin}: not a readable parquet file ({' '.join(str(err).split())})."
        ) from None
    if table.num_rows == 0:
        raise DatasetFormatError(f"{origin}: the parquet file has no rows.")
    return Split(origin, table.to_pylist())


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_hub(cfg: DatasetConfig) -> dict[str, Split]:
    if not cfg.hub_path:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r}: source=hub needs dataset.hub_path; or give {LOCAL_HINT}."
        )
    name = cfg.hub_path + (f"/{cfg.hub_name}" if cfg.hub_name else "")
    try:
        loaded = datasets.load_dataset(cfg.hub_path, cfg.hub_name)
        return {
            "train": Split(f"hub {name} [{cfg.train_split}]", loaded[cfg.train_split].to_list()),
            "test": Split(f"hub {name} [{cfg.test_split}]", loaded[cfg.test_split].to_list()),
        }
    except (OSError, ValueError, KeyError) as err:
        local = (
            f"give it as local files: {LOCAL_HINT} (with dataset.columns.<field>=<column> when "
            "the files' column names differ from the task's)"
        )
        if hub_offline():
            raise DatasetUnavailableError(
                f"dataset {cfg.name!r} ({name}) is not in the local Hugging Face cache and "
                f"hiso-run works offline: run once with {ONLINE_HINT} to download and cache it "
                f"for later offline runs; or {local}."
            ) from err
        reason = str(err).splitlines()[0].rstrip(".")
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r} ({name}) could not be loaded from the Hugging Face hub: "
            f"{reason}; {local}."
        ) from err


def _select(rows: Split, fields: Mapping[str, Column]) -> Records:
    """Each record's task fields, renamed from their columns; a missing column or a null value
    names the file and the line or row."""
    out = []
    for i, row in enumerate(rows.records):
        record = {}
        for name, source in fields.items():
            column = source.name
            if column not in row:
                raise DatasetFormatError(
                    f"{rows.origin}: {rows.where(i)}: column {column!r} ({source.why}) "
                    f"is missing; columns present: {list(row)}."
                )
            if row[column] is None:
                raise DatasetFormatError(
                    f"{rows.origin}: {rows.where(i)}: column {column!r} is null."
                )
            if name not in NOT_TEXT and not isinstance(row[column], str):
                raise DatasetFormatError(
                    f"{rows.origin}: {rows.where(i)}: column {column!r} holds "
                    f"{_kind(row[column])} ({_shown(row[column])}); a column the prompt shows "
                    "holds text: a string (in JSON, in quotes)."
                )
            record[name] = row[column]
        out.append(record)
    return out


def _label_id(value: Any, lookup: dict[str, int]) -> int | None:
    """The class id of a label value: an integer or bool in range (1.0 counts as 1), or a label
    name (any case); None when it is neither."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in lookup:
            return lookup[key]
        try:
            value = float(key)
        except ValueError:
            return None
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return lookup.get(str(value)) if isinstance(value, int) else None


def _map_labels(records: Records, rows: Split, labels: LabelSet, column: str) -> None:
    """Replace each label by its class id; labels that are none name their lines or rows, and
    string labels without label names name the config field that maps them."""
    names = labels.names or ()
    lookup = {name.lower(): i for i, name in enumerate(names)}
    lookup.update({str(i): i for i in range(len(labels.words))})
    bad = []
    for i, record in enumerate(records):
        label = _label_id(record["label"], lookup)
        if label is None:
            bad.append(i)
        else:
            record["label"] = label
    if not bad:
        return
    words = list(labels.words)
    strings = sorted({str(records[i]["label"]).strip() for i in bad} - {""})
    strings = [s for s in strings if not _is_number(s)]
    if labels.names is None and strings:
        first = next(i for i in bad if str(records[i]["label"]).strip() in strings)
        seen = strings[:SHOWN_ROWS] + (["..."] if len(strings) > SHOWN_ROWS else [])
        raise DatasetFormatError(
            f"{rows.origin}: {rows.where(first)}: label {records[first]['label']!r} in column "
            f"{column!r} is a string and dataset.label_names is not set: set it to the label "
            f"strings in class order, one per label word {words} (strings in this file: "
            f"{seen}), or give class ids 0..{len(words) - 1}."
        )
    shown = "; ".join(f"{rows.where(i)}: {records[i]['label']!r}" for i in bad[:SHOWN_ROWS])
    more = f"; and {len(bad) - SHOWN_ROWS} more" if len(bad) > SHOWN_ROWS else ""
    named = f" or {list(names)}" if names else ""
    raise DatasetFormatError(
        f"{rows.origin}: {len(bad)} label(s) outside the label set ({shown}{more}) in column "
        f"{column!r}, with no label word; allowed: 0..{len(words) - 1}{named}, one class per "
        f"label word {words}."
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_answers(records: Records, rows: Split, column: str) -> None:
    """Every example holds a gold answer: a non-empty string, a list of them, or {"text": [...]}."""
    for i, record in enumerate(records):
        value = record["answers"]
        texts = value.get("text") if isinstance(value, Mapping) else value
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(str(t).strip() for t in texts):
            raise DatasetFormatError(
                f"{rows.origin}: {rows.where(i)}: column {column!r} holds {value!r}, not a gold "
                'answer: a non-empty string, a list of them, or {"text": [...]}.'
            )
