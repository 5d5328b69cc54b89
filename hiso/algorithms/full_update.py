"""The full-update family's round (FedAvg, FedAdam/FedYogi/FedAdagrad, FedZO): each sampled client
downloads the model, runs its client update in its own storage and uploads its model change; a
server optimiser moves the model by the mean change. A member says what its client computes
(`client_update`) and which server step it takes (`server_optimizer`).

federation.client_updates=sequential instead chains the sampled clients, each starting from the
previous one's result, and ends the round at the last one's model (no server step): what the
DeComFL authors' FedAvg/FedAdam code computes on one device, where clients share the server's
tensors. Every process then runs every client (the same computation on each replica).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiso.algorithms.base import Algorithm, Batches, Workspace
from hiso.optim.server import MeanStep, ServerOptimizer
from hiso.protocol import ModelPayload


class FullUpdate(Algorithm):
    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        self.server_optimizer = self.make_server_optimizer()
        # where a client's model is built (SGD trains in `work`; ZO perturbs into `work`)
        self.client_model = space.work if not self.uses_directions else space.scratch()
        self._total: list[torch.Tensor] | None = None

    def make_server_optimizer(self) -> ServerOptimizer:
        """FedAvg's and FedZO's server step: x <- x + mean change."""
        return MeanStep()

    @abstractmethod
    def client_update(
        self, rnd: int, client: int, batches: list[list[int]], out: list[torch.Tensor]
    ) -> float:
        """Client `client`'s K local steps from the server model into `out` (the server model is
        not touched); returns its loss at the server model."""

    def state_dict(self) -> dict[str, Any]:
        return {"server_optimizer": self.server_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.server_optimizer.load_state_dict(state["server_optimizer"])

    def run_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        if self.space.cfg.federation.client_updates == "sequential":
            return self._sequential_round(rnd, clients, batches)
        return self._parallel_round(rnd, clients, batches)

    def _parallel_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        """Every sampled client starts from x; the server optimiser moves x by the mean change.
        The changes are summed in client order, one slot of clients (one per process) at a
        time."""
        s = self.space
        if self._total is None:
            self._total = s.scratch()
        total, client = self._total, self.client_model
        for t in total:
            t.zero_()
        mine: list[float] = []
        n, count = len(clients), s.processes.count
        for first in range(0, n, count):
            j = first + s.processes.index
            if j < n:
                mine.append(self.client_update(rnd, clients[j], batches[j], client))
                for y, x in zip(client, s.master, strict=True):
                    y.sub_(x)
            present = min(count, n - first)
            s.processes.add_slot(total, client, present)
            # every upload is a model change of the model's shapes: d float32 values
            for c in clients[first : first + present]:
                s.wire.downlink(c, ModelPayload(tuple(s.master)))
                s.wire.uplink(c, ModelPayload(tuple(client)))
        losses = s.processes.gather_rows(np.array(mine).reshape(-1, 1), n)[:, 0]
        if not np.isfinite(losses).all() or not all(torch.isfinite(t).all() for t in total):
            return float("nan")
        for t in total:
            t.div_(n)
        self.server_optimizer.step(s.master, total, rnd)
        return float(np.mean(losses))

    def _sequential_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        """Each client starts from the previous one's model; x ends at the last one's."""
        s = self.space
        if self._total is None:
            self._total = s.scratch()
        start, client = self._total, self.client_model
        for y, x in zip(start, s.master, strict=True):
            y.copy_(x)
        losses = []
        for c, mine in zip(clients, batches, strict=True):
            s.wire.downlink(c, ModelPayload(tuple(s.master)))
            losses.append(self.client_update(rnd, c, mine, client))
            s.wire.uplink(c, ModelPayload(tuple(client)))
            for x, y in zip(s.master, client, strict=True):
                x.copy_(y)
        if not np.isfinite(losses).all() or not all(torch.isfinite(x).all() for x in s.master):
            for x, y in zip(s.master, start, strict=True):
                x.copy_(y)
            return float("nan")
        return float(np.mean(losses))
