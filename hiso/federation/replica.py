"""A client that rebuilds the global model from x_0 and the bytes it receives, nothing else."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hiso.optim.zo import ZeroOrderOptimizer, ZOSettings
from hiso.protocol import RoundRecord


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
