"""The forwards a round evaluates: clients' training examples at the model's current parameters,
concatenated into one evaluation (or one per client) and split into length buckets."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hiso.federation.device import bucket_policy, forward_autocast
from hiso.optim.zo import LossFn
from hiso.schema import RunConfig
from hiso.tasks.base import Batch, Task
from hiso.tasks.buckets import length_buckets


class Forwards:
    def __init__(self, cfg: RunConfig, model: nn.Module, task: Task, device: torch.device) -> None:
        self.cfg, self.model, self.task, self.device = cfg, model, task, device
        self.buckets = bucket_policy(str(cfg.federation.length_buckets), device)

    def autocast(self) -> contextlib.AbstractContextManager:
        return forward_autocast(self.cfg, self.device)

    def forwards(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, Batch]]:
        """The forwards that evaluate the examples at `indices`: (positions in `indices`, batch)
        per length bucket (one forward when the task's examples all cost the same)."""
        lengths = self.task.lengths(indices)
        most, price = self.buckets
        if lengths is None or most == 1:
            groups = [np.arange(len(indices))]
        else:
            groups = length_buckets(lengths, most, price)
        return [
            (
                torch.as_tensor(g, device=self.device),
                self.task.batch([indices[k] for k in g], self.device),
            )
            for g in groups
        ]

    def client_losses(self, index_lists: Sequence[list[int]]) -> LossFn:
        """Per-client mean loss at the model's current parameters: all clients' examples in one
        evaluation (with federation.concat_clients=false, one per client), each evaluation
        split into length buckets by federation.length_buckets."""
        sizes = [len(ix) for ix in index_lists]
        if not sizes:  # a process with no client this round
            return lambda: np.empty(0)
        if self.cfg.federation.concat_clients:
            parts = [[i for ix in index_lists for i in ix]]
        else:
            parts = [list(ix) for ix in index_lists]
        plans = [(len(part), self.forwards(part)) for part in parts]

        def losses() -> np.ndarray:
            with torch.no_grad(), self.autocast():
                per_example = torch.cat([self._per_example(n, plan) for n, plan in plans])
            return np.array([part.mean().item() for part in per_example.split(sizes)])

        return losses

    def _per_example(self, n: int, plan: list[tuple[torch.Tensor, Batch]]) -> torch.Tensor:
        out = torch.empty(n, dtype=torch.float64, device=self.device)
        for positions, batch in plan:
            out[positions] = self.task.loss(self.model, batch).double()
        return out
