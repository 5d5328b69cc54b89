"""What crosses the simulated wire, with exact byte encodings, and the meter that counts it.

Little-endian layouts (u16/u32: unsigned, f32: IEEE float32):
- RoundPlan    (server -> sampled client): u32 round, u16 K, K x u32 seed
- ClientReport (client -> server):         u32 round, u16 K, u16 P, K*P x f32 scalar
- RoundRecord  (server -> client, catch-up): u32 round, u16 K, u16 P, K x u32 seed, K*P x f32 scalar
- ModelPayload (first-order baselines, both ways): the d float32 values, no header (shapes are
  known to both sides).
The wire counts len(encode()) of every message (the primary figure: all clients, catch-up
included). Beside it: `cumulative_scalar_bytes_all_clients`, the float32 values of those same
messages without seeds or headers; and the papers' conventions, which count ONE participating
client's own round (no catch-up, no other client), derived from what that client uploads
(see `paper_bytes`).
Scalars are the projected gradients g_{k,p}; a record carries their average over sampled clients.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

_PLAN = struct.Struct("<IH")
_SCALARS = struct.Struct("<IHH")
SCALAR_BYTES = 4


def _seeds_bytes(seeds: tuple[int, ...]) -> bytes:
    return np.asarray(seeds, dtype="<u4").tobytes()


def _scalars_array(scalars: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(scalars, dtype="<f4")
    if array.ndim != 2:
        raise ValueError(f"scalars must have shape (K, P), got {array.shape}")
    return array


@dataclass(frozen=True)
class RoundPlan:
    round: int
    seeds: tuple[int, ...]

    def encode(self) -> bytes:
        return _PLAN.pack(self.round, len(self.seeds)) + _seeds_bytes(self.seeds)

    @classmethod
    def decode(cls, data: bytes) -> RoundPlan:
        rnd, k = _PLAN.unpack_from(data)
        seeds = np.frombuffer(data, dtype="<u4", count=k, offset=_PLAN.size)
        return cls(rnd, tuple(int(s) for s in seeds))


@dataclass(frozen=True, eq=False)
class ClientReport:
    round: int
    scalars: np.ndarray  # (K, P) float32

    def encode(self) -> bytes:
        array = _scalars_array(self.scalars)
        return _SCALARS.pack(self.round, *array.shape) + array.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> ClientReport:
        rnd, k, p = _SCALARS.unpack_from(data)
        scalars = np.frombuffer(data, dtype="<f4", count=k * p, offset=_SCALARS.size)
        return cls(rnd, scalars.reshape(k, p).copy())


@dataclass(frozen=True, eq=False)
class RoundRecord:
    round: int
    seeds: tuple[int, ...]
    scalars: np.ndarray  # (K, P) float32, averaged over the round's sampled clients

    def encode(self) -> bytes:
        array = _scalars_array(self.scalars)
        if array.shape[0] != len(self.seeds):
            raise ValueError(f"{len(self.seeds)} seeds for {array.shape[0]} steps of scalars")
        return _SCALARS.pack(self.round, *array.shape) + _seeds_bytes(self.seeds) + array.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> RoundRecord:
        rnd, k, p = _SCALARS.unpack_from(data)
        seeds = np.frombuffer(data, dtype="<u4", count=k, offset=_SCALARS.size)
        offset = _SCALARS.size + 4 * k
        scalars = np.frombuffer(data, dtype="<f4", count=k * p, offset=offset)
        return cls(rnd, tuple(int(s) for s in seeds), scalars.reshape(k, p).copy())


@dataclass(frozen=True, eq=False)
class ModelPayload:
    """A full float32 model (FedAvg's download and upload)."""

    tensors: tuple[torch.Tensor, ...]

    @property
    def nbytes(self) -> int:
        """Length of `encode()`, computed without materialising it."""
        return sum(t.numel() * SCALAR_BYTES for t in self.tensors)

    def encode(self) -> bytes:
        return b"".join(
            t.detach().to("cpu", torch.float32).numpy().astype("<f4").tobytes()
            for t in self.tensors
        )


Message = RoundPlan | ClientReport | RoundRecord | ModelPayload


def scalar_count(message: Message) -> int:
    """Number of float32 values a message carries (seeds and headers aside)."""
    if isinstance(message, RoundPlan):
        return 0
    if isinstance(message, ModelPayload):
        return message.nbytes // SCALAR_BYTES
    return int(message.scalars.size)


def paper_bytes(upload: Message) -> tuple[int, int]:
    """One participating client's round in (HiSo's, DeComFL's) tables' convention, from its upload.

    Scalar reports (K*P float32 values): HiSo counts the K*P scalars up and as many down, 8KP
    bytes, seeds and headers not counted (40 B at K=1, P=5; its KB are 1024 B). DeComFL's tables
    imply 12KP bytes (60 B at P=5, 120 B at P=10; its MB are 10^6 B). A full model or model
    change (the full-update family: FedAvg, FedAdam, FedZO, ...) has one figure in both: the d
    float32 values up and the d down, 2 * 4 * d bytes.
    """
    values = scalar_count(upload)
    if isinstance(upload, ModelPayload):
        return 2 * SCALAR_BYTES * values, 2 * SCALAR_BYTES * values
    return 2 * SCALAR_BYTES * values, 3 * SCALAR_BYTES * values


Listener = Callable[[int, str, bytes], None]  # (client, message type name, encoded bytes)


@dataclass
class Wire:
    """The simulated network: encodes each message, counts its bytes and hands the bytes on.

    Per round it counts uplink and downlink bytes over all clients, and per client the totals;
    the papers' per-client figures come from the round's uploads (every sampled client uploads
    the same number of values).
    Listeners (e.g. a client replica) receive (client, message type name, encoded bytes); full
    models are counted by their exact encoded length without being materialised.
    """

    round_uplink: int = 0
    round_downlink: int = 0
    round_scalars: int = 0
    total_uplink: int = 0
    total_downlink: int = 0
    total_scalars: int = 0
    round_paper: tuple[int, int] = (0, 0)
    total_paper: tuple[int, int] = (0, 0)
    per_client: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    listeners: list[Listener] = field(default_factory=list)

    def _send(self, client: int, direction: str, message: Message) -> bytes:
        if isinstance(message, ModelPayload):
            data, size = b"", message.nbytes
        else:
            data = message.encode()
            size = len(data)
            for listener in self.listeners:
                listener(client, type(message).__name__, data)
        if direction == "up":
            self.round_paper = paper_bytes(message)
            self.round_uplink += size
            self.per_client[client][0] += size
        else:
            self.round_downlink += size
            self.per_client[client][1] += size
        self.round_scalars += scalar_count(message)
        return data

    def state_dict(self) -> dict[str, Any]:
        """Every counter (the per-round ones are zero between rounds) and the per-client totals."""
        counters = {f.name: getattr(self, f.name) for f in fields(self)}
        del counters["listeners"]
        counters["per_client"] = {c: list(v) for c, v in self.per_client.items()}
        return counters

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if name != "per_client":
                setattr(self, name, value)
        self.per_client.clear()
        self.per_client.update({c: list(v) for c, v in state["per_client"].items()})

    def downlink(self, client: int, message: Message) -> bytes:
        return self._send(client, "down", message)

    def uplink(self, client: int, message: Message) -> bytes:
        return self._send(client, "up", message)

    def close_round(self) -> dict[str, int]:
        """Fold this round into the totals and return the round's figures."""
        self.total_uplink += self.round_uplink
        self.total_downlink += self.round_downlink
        self.total_scalars += self.round_scalars
        hiso, decomfl = self.round_paper
        self.total_paper = (self.total_paper[0] + hiso, self.total_paper[1] + decomfl)
        figures = {
            "uplink_bytes": self.round_uplink,
            "downlink_bytes": self.round_downlink,
            "cumulative_uplink_bytes": self.total_uplink,
            "cumulative_downlink_bytes": self.total_downlink,
            "cumulative_bytes": self.total_uplink + self.total_downlink,
            "cumulative_scalar_bytes_all_clients": SCALAR_BYTES * self.total_scalars,
            "paper_bytes_hiso": hiso,
            "paper_bytes_decomfl": decomfl,
            "cumulative_paper_bytes_hiso": self.total_paper[0],
            "cumulative_paper_bytes_decomfl": self.total_paper[1],
        }
        self.round_uplink = self.round_downlink = self.round_scalars = 0
        self.round_paper = (0, 0)
        return figures
