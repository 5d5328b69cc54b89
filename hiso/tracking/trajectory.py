"""A replayable run's trajectory: what every party applied in each round, enough to rebuild the
model (and the optimizer state) of any round from the starting model, in a few bytes a round.

`trajectory.bin` in the run directory, little-endian: the magic b"HISOTRJ1", u32 n and n bytes of
UTF-8 JSON (the header: the run's config and command-line overrides as it runs now, rewritten
when a run is resumed), then one frame per round, in order from round 1: u32 length and that many
bytes of the algorithm's round entry (for the scalar-only family the round record's K x P float32
scalars: its round and seeds follow from the run seed; empty: the round was skipped under
nan_policy=skip). A frame is appended whole as its round ends; a frame cut short (a killed
process, a full disk) is dropped on reading, so the file always holds whole rounds.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiso.tracking.atomic import atomic_file
from hiso.tracking.unwritten import append_whole, writing

TRAJECTORY = "trajectory.bin"
MAGIC = b"HISOTRJ1"
_HEAD = struct.Struct("<8sI")
_FRAME = struct.Struct("<I")


class CorruptTrajectory(Exception):
    """A trajectory file whose header is missing, cut short or not a trajectory's."""


@dataclass
class Trajectory:
    """The header (`config`, `overrides`) and the round entries, entries[r] being round r + 1's."""

    header: dict[str, Any]
    entries: list[bytes]


def read_trajectory(path: Path) -> Trajectory:
    """The header and every whole frame of the file (a torn last frame is left out)."""
    data = Path(path).read_bytes()
    if len(data) < _HEAD.size:
        raise CorruptTrajectory(f"{path}: {len(data)} bytes, shorter than a header")
    magic, size = _HEAD.unpack_from(data)
    if magic != MAGIC or _HEAD.size + size > len(data):
        raise CorruptTrajectory(f"{path}: not a trajectory, or its header is cut short")
    try:
        header = json.loads(data[_HEAD.size : _HEAD.size + size])
    except ValueError as error:
        raise CorruptTrajectory(f"{path}: unreadable header ({error})") from error
    entries, offset = [], _HEAD.size + size
    while offset + _FRAME.size <= len(data):
        (length,) = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if end > len(data):
            break
        entries.append(data[offset + _FRAME.size : end])
        offset = end
    return Trajectory(header, entries)


def _frame(entry: bytes) -> bytes:
    return _FRAME.pack(len(entry)) + entry


class TrajectoryWriter:
    """Writes `path` afresh (atomically) with `header` and the `entries` of the rounds already
    run, then appends one frame per round. A write that fails (a full disk, a vanished run
    directory) raises OutputError naming the file; an append leaves no torn frame behind."""

    def __init__(self, path: Path, header: dict[str, Any], entries: list[bytes]) -> None:
        self.path = Path(path)
        text = json.dumps(header, sort_keys=True).encode("utf-8")
        with writing("the trajectory", self.path), atomic_file(self.path) as file:
            file.write(_HEAD.pack(MAGIC, len(text)) + text)
            file.write(b"".join(_frame(e) for e in entries))
        self.rounds = len(entries)

    def append(self, entry: bytes) -> None:
        """One round's frame, appended whole in one write."""
        self.rounds += 1
        with writing(f"round {self.rounds}'s trajectory frame", self.path):
            append_whole(self.path, _frame(entry))
