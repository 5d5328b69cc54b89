"""FedZO (Fang et al. 2022): K local zeroth-order steps per sampled client, each client on its own
directions (hiso/optim/fedzo.py), uploading its whole model change; the server takes the mean."""

from __future__ import annotations

import torch

from hiso.algorithms.base import Workspace, register
from hiso.algorithms.full_update import FullUpdate
from hiso.algorithms.scalar import zo_settings
from hiso.federation.server import round_seeds
from hiso.optim.fedzo import client_seeds, zo_client_update
from hiso.optim.zo import ZeroOrderOptimizer


@register
class FedZO(FullUpdate):
    name = "fedzo"

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        settings = zo_settings(space.cfg, space.device, cache_directions)
        self.zo = ZeroOrderOptimizer(settings, space.master)

    @property
    def cache_bytes(self) -> int:
        return self.zo.cache_bytes

    def client_update(
        self, rnd: int, client: int, batches: list[list[int]], out: list[torch.Tensor]
    ) -> float:
        s = self.space
        seeds = client_seeds(round_seeds(s.cfg.seed, rnd, s.cfg.federation.local_steps), client)
        return zo_client_update(
            self.zo,
            s.params,
            s.master,
            out,
            s.work,
            rnd,
            seeds,
            lambda step: s.forwards.client_losses([batches[step]]),
        )
