"""Checkpoints: a run's whole state in one file, written atomically, checked when read back.

A checkpoint file is the `torch.save` payload followed by a 48-byte trailer: the magic
b"HISOCKP1", the payload's length (u64, little-endian) and its SHA-256. A torn write or a
changed byte fails the length or the digest check. Files are replaced atomically
(hiso/tracking/atomic.py), so a crash at any moment leaves the old file or the new one. They
are named `round-000050.ckpt` by the round they hold; the newest `keep` are kept.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from hiso.tracking.atomic import atomic_file

MAGIC = b"HISOCKP1"
_TRAILER = struct.Struct("<8sQ32s")
_NAME = re.compile(r"round-(\d+)\.ckpt")
_CHUNK = 1 << 24


class CorruptCheckpoint(Exception):
    """A checkpoint file that is truncated, altered, or not a checkpoint."""


class _HashingWriter:
    """A file wrapper for torch.save that hashes and counts what passes through it."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically, with its length and SHA-256 in a trailer."""
    path = Path(path)
    path.parent.mkdir(exist_ok=True)  # not its parents: a run directory removed stays removed
    with atomic_file(path) as file:
        writer = _HashingWriter(file)
        torch.save(state, writer)
        file.write(_TRAILER.pack(MAGIC, writer.size, writer.sha.digest()))


def verify_checkpoint(path: Path) -> None:
    """Raise CorruptCheckpoint unless the file's trailer and digest match its payload."""
    size = path.stat().st_size
    if size < _TRAILER.size:
        raise CorruptCheckpoint(f"truncated ({size} bytes)")
    with path.open("rb") as file:
        file.seek(size - _TRAILER.size)
        magic, length, digest = _TRAILER.unpack(file.read(_TRAILER.size))
        if magic != MAGIC or length != size - _TRAILER.size:
            raise CorruptCheckpoint(f"truncated or not a checkpoint ({size} bytes, no trailer)")
        file.seek(0)
        sha, left = hashlib.sha256(), length
        while left:
            chunk = file.read(min(_CHUNK, left))
            if not chunk:
                raise CorruptCheckpoint("truncated while reading")
            sha.update(chunk)
            left -= len(chunk)
    if sha.digest() != digest:
        raise CorruptCheckpoint("checksum mismatch")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in a verified checkpoint (tensors memory-mapped on the CPU until used)."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # a payload that passed the digest but does not load
        raise CorruptCheckpoint(f"unreadable payload ({type(error).__name__}: {error})") from error


@dataclass
class Loaded:
    """The newest good checkpoint of a directory, and the newer ones that failed their checks."""

    state: dict[str, Any] | None
    path: Path | None
    rejected: list[str] = field(default_factory=list)


class Checkpoints:
    """The checkpoint files of one run directory: save (and prune), find, load the newest good."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def path(self, rnd: int) -> Path:
        return self.directory / f"round-{rnd:06d}.ckpt"

    def files(self) -> list[tuple[int, Path]]:
        """(round, path) of every checkpoint file, newest first."""
        if not self.directory.is_dir():
            return []
        found = [(_NAME.fullmatch(p.name), p) for p in self.directory.iterdir()]
        return sorted(((int(m.group(1)), p) for m, p in found if m), reverse=True)

    def save(self, rnd: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint of round `rnd`, then delete the ones after it (left by a run that
        was resumed from an earlier checkpoint) and all but the newest `keep`."""
        path = self.path(rnd)
        write_checkpoint(path, state)
        older = [p for r, p in self.files() if r < rnd]
        for r, p in self.files():
            if r > rnd or p in older[self.keep - 1 :]:
                p.unlink(missing_ok=True)
        for stale in self.directory.glob(".round-*.ckpt.tmp-*"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        return path

    def load_newest(self) -> Loaded:
        """The newest checkpoint that passes its checks; the failures before it are listed."""
        rejected = []
        for _, path in self.files():
            try:
                return Loaded(read_checkpoint(path), path, rejected)
            except CorruptCheckpoint as error:
                rejected.append(f"{path} is unusable: {error}")
        return Loaded(None, None, rejected)
