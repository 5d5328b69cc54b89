"""Seeded direction streams: any slice of any direction, regenerated on demand.

Direction p of a step with seed s has, for trainable parameter i, the slice
u_{s,p,i} ~ N(0, I) drawn by a generator seeded with derive_seed(s, p, i). Slices are independent
streams, so parties may regenerate them parameter by parameter, in any order, on any number of
threads, into reused buffers: the bits depend only on (s, p, i).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import torch

from hiso.seeding import derive_seed


def balanced_shares(sizes: Sequence[int], count: int) -> list[list[int]]:
    """Indices of `sizes` split into at most `count` shares of nearly equal total size (largest
    first onto the lightest share), each in ascending order; no share is empty."""
    count = max(1, min(count, len(sizes)))
    heap = [(0, k) for k in range(count)]
    shares: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        load, k = heapq.heappop(heap)
        shares[k].append(i)
        heapq.heappush(heap, (load + sizes[i], k))
    return [sorted(s) for s in shares if s]


class DirectionStream:
    """Fills reusable buffers with direction slices on the parameters' device; one stream per
    thread, each with its own generator and a buffer for the slices of the parameters `indices`."""

    def __init__(
        self, shapes: Sequence[torch.Size], device: torch.device, indices: Sequence[int]
    ) -> None:
        self.shapes = list(shapes)
        self.generator = torch.Generator(device=device)
        largest = max((self.shapes[i].numel() for i in indices), default=0)
        self._buffer = torch.empty(largest, dtype=torch.float32, device=device)

    def gaussian(
        self, seed: int, perturbation: int, index: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """u_{seed,perturbation,index}, written into `out` or else into the stream's buffer (a view
        valid until the next call)."""
        shape = self.shapes[index]
        self.generator.manual_seed(derive_seed(seed, perturbation, index))
        if out is None:
            out = self._buffer[: shape.numel()].view(shape)
        return out.normal_(generator=self.generator)
