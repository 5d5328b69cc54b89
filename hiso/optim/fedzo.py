"""The zeroth-order client of FedZO (Fang et al. 2022): K local ZO-SGD steps from the server
model, taken with DeComFL's estimator and step; the client then uploads its whole model change.

Each client draws its own directions, as in FedZO (shared directions would make the averaged
update DeComFL's exactly, at d floats per client instead of K*P scalars): client c's seed for
local step k is derived from the round's seed for step k and c.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from hiso.optim.zo import LossFn, ZeroOrderOptimizer
from hiso.seeding import derive_seed


def client_seeds(round_seeds: Sequence[int], client: int) -> tuple[int, ...]:
    """Client `client`'s direction seed for each local step of a round."""
    return tuple(derive_seed(seed, "fedzo-client", client) for seed in round_seeds)


def zo_client_update(
    zo: ZeroOrderOptimizer,
    params: Sequence[nn.Parameter],
    start: Sequence[torch.Tensor],
    client: Sequence[torch.Tensor],
    work: Sequence[torch.Tensor],
    rnd: int,
    seeds: Sequence[int],
    step_losses: Callable[[int], LossFn],
) -> float:
    """Copy `start` into `client` and take one ZO step there per seed, step k on the batch of
    `step_losses(k)` (perturbed points go to `work`; optimizer state, e.g. momentum, starts afresh);
    return the loss at `start`."""
    for c, s in zip(client, start, strict=True):
        c.copy_(s)
    state = zo.init_state(client)
    first = float("nan")
    for k, seed in enumerate(seeds):
        g, f0 = zo.estimate(params, client, work, state, seed, step_losses(k))
        if k == 0:
            first = float(f0[0])
        zo.local_step(client, state, rnd, seed, g[0])
    return first
