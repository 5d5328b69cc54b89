"""Seeded direction streams: any slice of any direction, regenerated on demand.

Direction p of a step with seed s has, for trainable parameter i, the slice
u_{s,p,i} ~ N(0, I) drawn by a generator seeded with derive_seed(s, p, i). Slices are independent
streams, so parties may regenerate them parameter by parameter, in any order, into reused buffers.
"""

from __future__ import annotations

import torch

from hiso.seeding import derive_seed


class DirectionStream:
    """Fills reusable buffers with direction slices on the parameters' device."""

    def __init__(self, shapes: list[torch.Size], device: torch.device) -> None:
        self.shapes = shapes
        self.generator = torch.Generator(device=device)
        largest = max((s.numel() for s in shapes), default=0)
        self._buffer = torch.empty(largest, dtype=torch.float32, device=device)

    def gaussian(
        self, seed: int, perturbation: int, index: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """u_{seed,perturbation,index}, written into `out` or else into the shared buffer (a view
        valid until the next call)."""
        shape = self.shapes[index]
        self.generator.manual_seed(derive_seed(seed, perturbation, index))
        if out is None:
            out = self._buffer[: shape.numel()].view(shape)
        return out.normal_(generator=self.generator)
