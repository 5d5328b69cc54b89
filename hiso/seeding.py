"""Named random streams derived from the run seed.

Every random choice in a run (client sampling, round seeds, data order, directions) comes from a
generator seeded by `derive_seed(run_seed, name, ...)`, never from global RNG state, so any party
can regenerate any stream at any point, in any order.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

SEED_BITS = 63


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that is a fixed function of `parts` (stable across processes and runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << SEED_BITS) - 1)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def numpy_generator(*parts: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))
