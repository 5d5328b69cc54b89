"""FedKSeed's sum S = sum_j A_j z_j over a pool too large to keep as matrices, kept exactly.

A language model's pool does not fit in memory (SmolLM2: 4096 directions of 134.5M values), and
regenerating the direction of every seed with A_j != 0 at each rebuild costs a direction per
seed drawn so far, every round (a client's step draws a new seed almost every time: about 1,000
directions a round after 500 rounds of two clients). Summed as integers, S can be kept and
updated from the seeds whose A_j changed, and still equal what one fresh pass over the pool
computes. Each term is rounded on its own,

    t_j = round(A_j z_j 2^32)    (A_j and z_j float32: their product is exact in float64),

and integer addition is associative, so S = sum_j t_j however it was built: round by round, in
one catch-up pass, after a resume. The model x = float32(x_0 - lr 2^-32 S) is then a function of
A alone, and every party agrees bit for bit. The rounding, 2^-33 of a term, is far below float32's
resolution of any parameter.

Range: while B = sum_j |A_j| max|z_j| stays under 2^29, every term and S fit in int64 (|S| <=
2^61 + K). Beyond it the model is not representable and the parameters are NaN: a coordinate may
then have moved lr 2^29 (5e3 at lr 1e-5), a run that diverged long before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hiso.optim.directions import DirectionStream

FRACTION_BITS = 32
RANGE = 2.0**29
# values per pass through the float64 and int64 buffers (2 MB each: a pass over SmolLM2's
# 134.5M values took 0.23 s in chunks of this size against 2 s through whole-tensor temporaries)
CHUNK = 1 << 18


class PoolSums:
    """S_i = sum_j t_j,i (int64) for each parameter i, the A it holds, and max|z_j| per seed."""

    def __init__(self, seeds: Sequence[int], x0: Sequence[torch.Tensor]) -> None:
        self.seeds = tuple(seeds)
        self.sums = [torch.zeros(x.shape, dtype=torch.int64, device=x.device) for x in x0]
        self.held = np.zeros(len(self.seeds), dtype=np.float32)
        # max |z_j| over every coordinate, set when seed j's direction is drawn (every seed with
        # A_j != 0 has been)
        self.zmax = np.zeros(len(self.seeds))
        device = x0[0].device if x0 else torch.device("cpu")
        self.stream = DirectionStream([x.shape for x in x0], device, range(len(x0)))
        self._real = torch.empty(CHUNK, dtype=torch.float64, device=device)
        self._whole = torch.empty(CHUNK, dtype=torch.int64, device=device)

    def update(self, accumulated: np.ndarray) -> None:
        """Hold `accumulated` (float32, one value per seed): the terms of the seeds whose value
        changed are replaced, each direction drawn once."""
        a = np.asarray(accumulated, dtype=np.float32)
        for j in np.flatnonzero(a != self.held):
            old, new = float(self.held[j]), float(a[j])
            zmax = 0.0
            for i, total in enumerate(self.sums):
                z = self.stream.gaussian(self.seeds[j], 0, i).reshape(-1)
                top = float(z.abs().max()) if z.numel() else 0.0
                zmax = max(zmax, top)
                for value, sign in ((new, 1), (old, -1)):
                    if value != 0.0 and abs(value) * top < RANGE:
                        self._add_terms(total.view(-1), z, value, sign)
            self.zmax[j] = zmax
        self.held = a.copy()

    def _add_terms(self, total: torch.Tensor, z: torch.Tensor, value: float, sign: int) -> None:
        """total += sign * round(value z 2^32), chunk by chunk."""
        scale = value * 2.0**FRACTION_BITS
        for start in range(0, z.numel(), CHUNK):
            n = min(CHUNK, z.numel() - start)
            real, whole = self._real[:n], self._whole[:n]
            real.copy_(z[start : start + n]).mul_(scale).round_()
            whole.copy_(real)
            total[start : start + n].add_(whole, alpha=sign)

    def in_range(self) -> bool:
        nonzero = self.held != 0
        return float(np.sum(np.abs(self.held[nonzero]) * self.zmax[nonzero])) < RANGE

    def write(self, params: Sequence[torch.Tensor], x0: Sequence[torch.Tensor], lr: float) -> None:
        """params <- float32(x_0 - lr 2^-32 S), or NaN outside the range."""
        if not self.in_range():
            for x in params:
                x.fill_(float("nan"))
            return
        scale = -lr * 2.0**-FRACTION_BITS
        for x, start, total in zip(params, x0, self.sums, strict=True):
            flat, begin, sums = x.view(-1), start.reshape(-1), total.view(-1)
            for k in range(0, flat.numel(), CHUNK):
                n = min(CHUNK, flat.numel() - k)
                real = self._real[:n]
                real.copy_(sums[k : k + n]).mul_(scale).add_(begin[k : k + n])
                flat[k : k + n].copy_(real)

    # checkpoints: tensors only ---------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"pool_sums.{i}": total.cpu() for i, total in enumerate(self.sums)}
        state["pool_held"] = torch.from_numpy(self.held.copy())
        state["pool_zmax"] = torch.from_numpy(self.zmax.copy())
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """A checkpoint without the sums (one written by the pool-matrix path) leaves them at zero:
        the next update draws every seed with A_j != 0 once."""
        if "pool_held" not in state:
            return
        for i, total in enumerate(self.sums):
            total.copy_(state[f"pool_sums.{i}"])
        self.held = state["pool_held"].numpy().astype(np.float32).copy()
        self.zmax = state["pool_zmax"].numpy().astype(np.float64).copy()
