"""FedKSeed's model (Qin et al., ICML 2024, arXiv 2312.06353): K candidate seeds drawn once from
the run seed, and the model every party rebuilds from the accumulated per-seed scalars,

    x = x_0 - lr * sum_j A_j z_j,   j = 0..K-1 in pool order (only A_j != 0 moves x),

where z_j is the direction of candidate seed j (DirectionStream's perturbation 0 of that seed) and
A_j the sum over rounds of the clients' mean per-seed scalar. One pass over the pool brings any
party to the latest model, however many rounds it missed; every party computes the same pass, so
they agree bit for bit. The authors' code does the same (FederatedScope, branch FedKSeed,
server.py: Server.update_global_model_by_seed_pool applies zo_update(seed, grad) for every seed
with a nonzero accumulated scalar to a copy of the initial model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hiso.optim.zo import ZeroOrderOptimizer, ZOState
from hiso.protocol import RoundRecord
from hiso.seeding import numpy_generator


def candidate_seeds(run_seed: int, size: int) -> tuple[int, ...]:
    """The K candidate seeds (u32), a fixed function of the run seed."""
    gen = numpy_generator(run_seed, "fedkseed-candidate-seeds")
    return tuple(int(s) for s in gen.integers(0, 2**32, size=size, dtype=np.uint64))


def rebuild(
    zo: ZeroOrderOptimizer,
    params: Sequence[torch.Tensor],
    x0: Sequence[torch.Tensor],
    seeds: Sequence[int],
    accumulated: np.ndarray,
) -> None:
    """params <- x_0 - lr * sum_j accumulated_j z_{seeds[j]}, one step per nonzero entry in pool
    order (the optimizer's constant lr, one direction per step, no momentum)."""
    for x, start in zip(params, x0, strict=True):
        x.copy_(start)
    touched = np.flatnonzero(accumulated)
    if touched.size == 0:
        return
    steps = RoundRecord(
        0,
        tuple(seeds[j] for j in touched),
        np.asarray(accumulated, dtype=np.float32)[touched].reshape(-1, 1),
    )
    zo.apply_record(params, ZOState(), steps)
