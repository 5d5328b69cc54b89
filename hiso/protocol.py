"""What crosses the simulated wire, with exact byte encodings: the lowest layer, imported by the
optimisers, the algorithms and the federation alike (hiso/federation/wire.py meters it).

Little-endian layouts (u16/u32: unsigned, f32: IEEE float32):
- RoundPlan    (server -> sampled client): u32 round, u16 K, K x u32 seed
- ClientReport (client -> server):         u32 round, u16 K, u16 P, K*P x f32 scalar
- RoundRecord  (server -> client, catch-up): u32 round, u16 K, u16 P, K x u32 seed, K*P x f32 scalar
- ModelPayload (first-order baselines, both ways): the d float32 values, no header (shapes are
  known to both sides).
- SeedPool     (FedKSeed, server -> sampled client): u32 round, u32 K, u8 weighted,
  K x f32 accumulated scalar, then (weighted = 1, FedKSeed-Pro) K x f32 sampling probability
- SeedReport   (FedKSeed, client -> server): u32 round, u32 n, n x u32 pool index, n x f32 scalar
The wire counts len(encode()) of every message (the primary figure: all clients, catch-up
included). Beside it: `cumulative_scalar_bytes_all_clients`, the float32 values of those same
messages without seeds or headers; and the papers' conventions, which count ONE participating
client's own round (no catch-up, no other client), derived from what that client uploads
(see `paper_bytes`), and FedKSeed's, which counts one participating client's download and upload.
Scalars are the projected gradients g_{k,p}; a record carries their average over sampled clients.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

_PLAN = struct.Struct("<IH")
_SCALARS = struct.Struct("<IHH")
_POOL = struct.Struct("<IIB")
_PAIRS = struct.Struct("<II")
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


@dataclass(frozen=True, eq=False)
class SeedPool:
    """FedKSeed's download: the accumulated scalar of every candidate seed (the model is
    x_0 - lr * sum_j accumulated_j z_j) and, for FedKSeed-Pro, the seeds' sampling
    probabilities."""

    round: int
    accumulated: np.ndarray  # (K,) float32
    probabilities: np.ndarray | None = None  # (K,) float32, FedKSeed-Pro only

    def encode(self) -> bytes:
        sums = np.ascontiguousarray(self.accumulated, dtype="<f4")
        weighted = self.probabilities is not None
        out = _POOL.pack(self.round, sums.size, weighted) + sums.tobytes()
        if self.probabilities is not None:
            probabilities = np.ascontiguousarray(self.probabilities, dtype="<f4")
            if probabilities.shape != sums.shape:
                raise ValueError(f"{probabilities.size} probabilities for {sums.size} seeds")
            out += probabilities.tobytes()
        return out

    @classmethod
    def decode(cls, data: bytes) -> SeedPool:
        rnd, k, weighted = _POOL.unpack_from(data)
        sums = np.frombuffer(data, dtype="<f4", count=k, offset=_POOL.size).copy()
        probabilities = None
        if weighted:
            offset = _POOL.size + SCALAR_BYTES * k
            probabilities = np.frombuffer(data, dtype="<f4", count=k, offset=offset).copy()
        return cls(rnd, sums, probabilities)


@dataclass(frozen=True, eq=False)
class SeedReport:
    """FedKSeed's upload: one (candidate seed index, scalar) pair per local step."""

    round: int
    indices: np.ndarray  # (n,) indices into the candidate seeds
    scalars: np.ndarray  # (n,) float32

    def encode(self) -> bytes:
        indices = np.ascontiguousarray(self.indices, dtype="<u4")
        scalars = np.ascontiguousarray(self.scalars, dtype="<f4")
        if indices.shape != scalars.shape or indices.ndim != 1:
            raise ValueError(f"{indices.shape} indices for {scalars.shape} scalars")
        return _PAIRS.pack(self.round, indices.size) + indices.tobytes() + scalars.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> SeedReport:
        rnd, n = _PAIRS.unpack_from(data)
        indices = np.frombuffer(data, dtype="<u4", count=n, offset=_PAIRS.size)
        offset = _PAIRS.size + 4 * n
        scalars = np.frombuffer(data, dtype="<f4", count=n, offset=offset)
        return cls(rnd, indices.astype(np.int64), scalars.copy())


Message = RoundPlan | ClientReport | RoundRecord | ModelPayload | SeedPool | SeedReport
# the papers' byte conventions, each a figure for one participating client's round
CONVENTIONS = ("hiso", "decomfl", "fedkseed")


def scalar_count(message: Message) -> int:
    """Number of float32 values a message carries (seeds, indices and headers aside)."""
    if isinstance(message, RoundPlan):
        return 0
    if isinstance(message, ModelPayload):
        return message.nbytes // SCALAR_BYTES
    if isinstance(message, SeedPool):
        extra = 0 if message.probabilities is None else message.probabilities.size
        return int(message.accumulated.size + extra)
    return int(message.scalars.size)


def paper_bytes(message: Message, direction: str) -> dict[str, int]:
    """What one participating client's message (`direction` "up" or "down") adds to its round in
    each paper's convention that counts it.

    Scalar reports (K*P float32 values): HiSo counts the K*P scalars up and as many down, 8KP
    bytes, seeds and headers not counted (40 B at K=1, P=5; its KB are 1024 B). DeComFL's tables
    imply 12KP bytes (60 B at P=5, 120 B at P=10; its MB are 10^6 B). A full model or model
    change (the full-update family: FedAvg, FedAdam, FedZO, ...) has one figure in both: the d
    float32 values up and the d down, 2 * 4 * d bytes; all of these come from the upload.
    FedKSeed (Qin et al. 2024, Sec. 3) counts the K accumulated float32 scalars a client downloads
    and the n (seed, scalar) pairs it uploads, 4 bytes each: 4K + 8n (16 KB + 1.6 KB at K = 4096,
    n = 200 steps, the title's "under 18 kilobytes"); Pro's probabilities are not counted.
    """
    if direction == "down":
        if isinstance(message, SeedPool):
            return {"fedkseed": SCALAR_BYTES * int(message.accumulated.size)}
        return {}
    if isinstance(message, SeedReport):
        return {"fedkseed": 2 * SCALAR_BYTES * int(message.scalars.size)}
    values = scalar_count(message)
    if isinstance(message, ModelPayload):
        return {"hiso": 2 * SCALAR_BYTES * values, "decomfl": 2 * SCALAR_BYTES * values}
    return {"hiso": 2 * SCALAR_BYTES * values, "decomfl": 3 * SCALAR_BYTES * values}
