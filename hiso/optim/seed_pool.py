"""FedKSeed's model (Qin et al., ICML 2024, arXiv 2312.06353): K candidate seeds drawn once from
the run seed, and the model every party rebuilds from the accumulated per-seed scalars,

    x = x_0 - lr * sum_j A_j z_j,   j = 0..K-1 (only A_j != 0 moves x),

where z_j is the direction of candidate seed j (DirectionStream's perturbation 0 of that seed) and
A_j the sum over rounds of the clients' mean per-seed scalar. One pass over the pool brings any
party to the latest model, however many rounds it missed; every party computes the same function
of A (PoolRebuild: one matrix-vector product per parameter where the pool's directions fit in
memory, else exact integer sums updated from the seeds whose A_j changed, hiso/optim/pool_sums.py),
so they agree bit for bit. The authors' code does the same (FederatedScope, branch FedKSeed,
server.py: Server.update_global_model_by_seed_pool applies zo_update(seed, grad) for every seed
with a nonzero accumulated scalar to a copy of the initial model).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from hiso.optim.directions import DirectionStream
from hiso.optim.pool_sums import PoolSums
from hiso.optim.zo import ZeroOrderOptimizer
from hiso.seeding import numpy_generator


def candidate_seeds(run_seed: int, size: int) -> tuple[int, ...]:
    """The K candidate seeds (u32), a fixed function of the run seed."""
    gen = numpy_generator(run_seed, "fedkseed-candidate-seeds")
    return tuple(int(s) for s in gen.integers(0, 2**32, size=size, dtype=np.uint64))


# the pool's directions kept as K x d float64 matrices when they take at most this much memory
POOL_MATRIX_BYTES = 1 << 30


class PoolRebuild:
    """params <- x_0 - lr * sum_j A_j z_{seeds[j]} (the optimizer's constant lr, z = u).

    When the pool's directions fit in `matrix_bytes` (default POOL_MATRIX_BYTES) as K x d float64
    (the digits CNN: 4096 x 2,050, 67 MB), they are drawn once and kept, and each rebuild is one
    matrix-vector product per parameter, summed in float64 and rounded to float32 once: about 10
    ms a round where regenerating 4096 directions took about 3 s. Otherwise (a language model) the
    sum is kept as exact integers (PoolSums), and a rebuild draws only the directions of the seeds
    whose A_j changed since the last one: a round costs about one direction per local step, as in
    DeComFL, where drawing every seed with A_j != 0 cost one per step of the whole run so far. Which
    way depends only on K and d, so every party and every resumed run rebuilds the same bits."""

    def __init__(
        self,
        zo: ZeroOrderOptimizer,
        x0: Sequence[torch.Tensor],
        seeds: Sequence[int],
        matrix_bytes: int | None = None,
    ) -> None:
        self.zo, self.x0, self.seeds = zo, list(x0), tuple(seeds)
        size = len(self.seeds) * sum(x.numel() for x in self.x0) * 8
        self.matrix = size <= (POOL_MATRIX_BYTES if matrix_bytes is None else matrix_bytes)
        self.sums = None if self.matrix else PoolSums(self.seeds, self.x0)

    def __call__(self, params: Sequence[torch.Tensor], accumulated: np.ndarray) -> None:
        lr = self.zo.settings.lr.at(0)
        if self.sums is not None:
            self.sums.update(accumulated)
            self.sums.write(params, self.x0, lr)
            return
        a = torch.as_tensor(np.asarray(accumulated, dtype=np.float32), dtype=torch.float64)
        zs = pool_matrices(self.seeds, tuple(x.shape for x in self.x0), self.x0[0].device)
        for x, start, z in zip(params, self.x0, zs, strict=True):
            step = (a.to(z.device) @ z).view(start.shape)
            x.copy_(start.double().sub_(step, alpha=lr))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The integer sums (none for the pool matrices): a resumed run need not draw again every
        seed with A_j != 0."""
        return {} if self.sums is None else self.sums.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.sums is not None:
            self.sums.load_state_dict(state)


@functools.lru_cache(maxsize=1)
def pool_matrices(
    seeds: tuple[int, ...], shapes: tuple[torch.Size, ...], device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Per parameter i, the K x n_i float64 matrix whose row j is u_{seeds[j], 0, i} (the float32
    draw DirectionStream makes); one set per process, shared by every party that rebuilds."""
    stream = DirectionStream(shapes, device, range(len(shapes)))
    out = []
    for i, shape in enumerate(shapes):
        z = torch.empty(len(seeds), shape.numel(), dtype=torch.float64, device=device)
        for j, seed in enumerate(seeds):
            z[j] = stream.gaussian(seed, 0, i).reshape(-1)
        out.append(z)
    return tuple(out)
