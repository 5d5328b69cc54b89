"""FedKSeed's model (Qin et al., ICML 2024, arXiv 2312.06353): K candidate seeds drawn once from
the run seed, and the model every party rebuilds from the accumulated per-seed scalars,

    x = x_0 - lr * sum_j A_j z_j,   j = 0..K-1 in pool order (only A_j != 0 moves x),

where z_j is the direction of candidate seed j (DirectionStream's perturbation 0 of that seed) and
A_j the sum over rounds of the clients' mean per-seed scalar. One pass over the pool brings any
party to the latest model, however many rounds it missed; every party computes the same pass
(PoolRebuild: one matrix-vector product per parameter where the pool's directions fit in memory),
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
from hiso.optim.zo import ZeroOrderOptimizer, ZOState
from hiso.protocol import RoundRecord
from hiso.seeding import numpy_generator


def candidate_seeds(run_seed: int, size: int) -> tuple[int, ...]:
    """The K candidate seeds (u32), a fixed function of the run seed."""
    gen = numpy_generator(run_seed, "fedkseed-candidate-seeds")
    return tuple(int(s) for s in gen.integers(0, 2**32, size=size, dtype=np.uint64))


# the pool's directions kept as K x d float64 matrices when they take at most this much memory
POOL_MATRIX_BYTES = 1 << 30


class PoolRebuild:
    """params <- x_0 - lr * sum_j A_j z_{seeds[j]} (the optimizer's constant lr, z = u).

    When the pool's directions fit in `matrix_bytes` as K x d float64 (the digits CNN: 4096 x
    2,050, 67 MB), they are drawn once and kept, and each rebuild is one matrix-vector product per
    parameter, summed in float64 and rounded to float32 once: about 10 ms a round where
    regenerating 4096 directions took about 3 s. Otherwise (a language model) each nonzero A_j's
    direction is regenerated and applied in pool order, in float32. Which way depends only on
    K and d, so every party and every resumed run rebuilds the same bits."""

    def __init__(
        self,
        zo: ZeroOrderOptimizer,
        x0: Sequence[torch.Tensor],
        seeds: Sequence[int],
        matrix_bytes: int = POOL_MATRIX_BYTES,
    ) -> None:
        self.zo, self.x0, self.seeds = zo, list(x0), tuple(seeds)
        size = len(self.seeds) * sum(x.numel() for x in self.x0) * 8
        self.matrix = size <= matrix_bytes

    def __call__(self, params: Sequence[torch.Tensor], accumulated: np.ndarray) -> None:
        if self.matrix:
            a = torch.as_tensor(np.asarray(accumulated, dtype=np.float32), dtype=torch.float64)
            lr = self.zo.settings.lr.at(0)
            zs = pool_matrices(self.seeds, tuple(x.shape for x in self.x0), self.x0[0].device)
            for x, start, z in zip(params, self.x0, zs, strict=True):
                step = (a.to(z.device) @ z).view(start.shape)
                x.copy_(start.double().sub_(step, alpha=lr))
            return
        for x, start in zip(params, self.x0, strict=True):
            x.copy_(start)
        touched = np.flatnonzero(accumulated)
        if touched.size == 0:
            return
        steps = RoundRecord(
            0,
            tuple(self.seeds[j] for j in touched),
            np.asarray(accumulated, dtype=np.float32)[touched].reshape(-1, 1),
        )
        self.zo.apply_record(params, ZOState(), steps)


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
