"""Read offline wandb runs back from their `.wandb` transaction logs.

wandb 0.31 no longer ships a Python reader for these files, so the framing is parsed here and
each record is decoded with wandb's own protobuf message `wandb_internal_pb2.Record`. The file is
a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of
chunks, each with a 7-byte header (CRC-32 of type byte and data, length, type
FULL/FIRST/MIDDLE/LAST); a block tail shorter than a chunk header is zero padding.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

from hiso.tracking.records import json_safe

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK_BYTES = 32768
_FULL, _FIRST, _LAST = 1, 2, 4


def _payloads(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    if data[: _FILE_HEADER.size] != _FILE_HEADER.pack(b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path} is not a wandb transaction log (bad file header)")
    pos, pieces = _FILE_HEADER.size, []
    while pos + _CHUNK_HEADER.size <= len(data):
        room = _BLOCK_BYTES - pos % _BLOCK_BYTES
        if room < _CHUNK_HEADER.size:
            pos += room
            continue
        checksum, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        start = pos + _CHUNK_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            return  # the torn tail of a run that died mid-write
        pos = start + length
        pieces = [chunk] if kind in (_FULL, _FIRST) else [*pieces, chunk]
        if kind in (_FULL, _LAST):
            yield b"".join(pieces)


def run_files(wandb_dir: Path) -> list[Path]:
    """The `.wandb` files of the runs under a wandb directory, oldest first (skips `latest-run`)."""
    files = Path(wandb_dir).glob("*/run-*.wandb")
    return sorted(f for f in files if not f.parent.is_symlink())


def file_records(path: Path) -> Iterator[pb.Record]:
    """Every protobuf record of one run file, in order."""
    for payload in _payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def read_records(wandb_dir: Path) -> Iterator[pb.Record]:
    """Every protobuf record of every run under `wandb_dir`, in file order."""
    for path in run_files(wandb_dir):
        yield from file_records(path)


def read_wandb_offline_history(wandb_dir: Path) -> list[dict]:
    """The logged history rows of the runs under `wandb_dir` (e.g. run_dir/"wandb").

    wandb's own keys (`_step`, `_runtime`, `_timestamp`: any key starting with "_") are dropped and
    non-finite numbers become None, so the rows compare equal to metrics.jsonl.
    """
    rows = []
    for record in read_records(wandb_dir):
        if record.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in record.history.item:
            key = item.key or ".".join(item.nested_key)
            if not key.startswith("_"):
                row[key] = json.loads(item.value_json)
        rows.append(json_safe(row))
    return rows


def read_wandb_offline_summary(wandb_dir: Path) -> dict:
    """The summary the newest run under `wandb_dir` ends with, as wandb builds it from the file:
    each history row sets its keys, each summary record sets or removes its own, in file order."""
    files = run_files(wandb_dir)
    summary: dict = {}
    for record in file_records(files[-1]) if files else ():
        kind = record.WhichOneof("record_type")
        items = record.history.item if kind == "history" else record.summary.update
        if kind in ("history", "summary"):
            summary |= {
                item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items
            }
        if kind == "summary":
            for item in record.summary.remove:
                summary.pop(item.key or ".".join(item.nested_key), None)
    return json_safe({k: v for k, v in summary.items() if not k.startswith("_")})


def read_wandb_run_ids(wandb_dir: Path) -> list[str]:
    """The wandb run id of each run file under `wandb_dir`, oldest first."""
    return [
        next(r.run.run_id for r in file_records(path) if r.WhichOneof("record_type") == "run")
        for path in run_files(wandb_dir)
    ]
