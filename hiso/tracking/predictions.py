"""Which test examples an evaluation got right, a bit per example: what a paired test between two
runs at equal seeds (McNemar) needs, in a few hundred bytes of summary.json.

A run stores `test_correct` = {"final": ENTRY, "best": ENTRY}, each ENTRY being `encode(...)` of the
per-example correctness at that round, plus its "round"."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np


def encode(correct: Sequence[bool] | np.ndarray, round_: int) -> dict[str, Any]:
    """{"round", "n", "bits"}: the bits packed little-end first and base64-encoded."""
    flags = np.asarray(correct, dtype=bool).reshape(-1)
    packed = np.packbits(flags, bitorder="little")
    return {"round": round_, "n": int(flags.size), "bits": base64.b64encode(packed).decode()}


def decode(entry: dict[str, Any]) -> np.ndarray:
    """The boolean vector `encode` packed."""
    packed = np.frombuffer(base64.b64decode(entry["bits"]), dtype=np.uint8)
    return np.unpackbits(packed, count=int(entry["n"]), bitorder="little").astype(bool)
