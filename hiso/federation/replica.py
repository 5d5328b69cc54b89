"""Clients that rebuild the global model from x_0 and the bytes they receive, nothing else:
the scalar-only family's (round records replayed) and FedKSeed's (the seed pool rebuilt)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hiso.optim.seed_pool import PoolRebuild
from hiso.optim.zo import ZeroOrderOptimizer, ZOSettings
from hiso.protocol import RoundRecord, SeedPool


class ClientReplica:
    """Holds its own copy of the model and optimizer state, and replays every round record
    addressed to its client with the same `apply_record` the server uses."""

    def __init__(self, client: int, settings: ZOSettings, x0: Sequence[torch.Tensor]) -> None:
        self.client = client
        self.params = [x.detach().clone() for x in x0]
        self.optimizer = ZeroOrderOptimizer(settings, self.params)
        self.state = self.optimizer.init_state(self.params)
        self.rounds_replayed: list[int] = []

    def receive(self, client: int, kind: str, data: bytes) -> None:
        if client != self.client or kind != RoundRecord.__name__:
            return
        record = RoundRecord.decode(data)
        self.optimizer.apply_record(self.params, self.state, record)
        self.rounds_replayed.append(record.round)


class SeedPoolReplica:
    """FedKSeed's client: holds x_0 and the candidate seeds, and rebuilds the model from every
    SeedPool addressed to its client, in one pass whatever rounds it missed."""

    def __init__(
        self,
        client: int,
        settings: ZOSettings,
        x0: Sequence[torch.Tensor],
        seeds: Sequence[int],
    ) -> None:
        self.client = client
        start = [x.detach().clone() for x in x0]
        self.params = [x.clone() for x in start]
        self.rebuild = PoolRebuild(ZeroOrderOptimizer(settings, self.params), start, seeds)
        # (round, the model rebuilt at its start) for every pool received
        self.rebuilt: list[tuple[int, list[torch.Tensor]]] = []

    def receive(self, client: int, kind: str, data: bytes) -> None:
        if client != self.client or kind != SeedPool.__name__:
            return
        pool = SeedPool.decode(data)
        self.rebuild(self.params, pool.accumulated)
        self.rebuilt.append((pool.round, [x.clone() for x in self.params]))
