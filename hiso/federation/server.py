"""The server of the scalar-only protocol: samples clients, draws round seeds, averages the
clients' scalars into a round record, and keeps the history stale clients replay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiso.protocol import ClientReport, RoundPlan, RoundRecord
from hiso.seeding import derive_seed, torch_generator


def sample_clients(run_seed: int, rnd: int, num_clients: int, per_round: int) -> list[int]:
    """Uniform sample without replacement, a fixed function of (run seed, round)."""
    gen = torch_generator(derive_seed(run_seed, "sampling", rnd))
    return sorted(torch.randperm(num_clients, generator=gen)[:per_round].tolist())


def round_seeds(run_seed: int, rnd: int, local_steps: int) -> tuple[int, ...]:
    """The round's direction seed for each local step (u32), a fixed function of (run seed,
    round)."""
    return tuple(
        derive_seed(run_seed, "round-seed", rnd, k) & 0xFFFFFFFF for k in range(local_steps)
    )


class Server:
    def __init__(self, run_seed: int, num_clients: int, local_steps: int) -> None:
        self.run_seed = run_seed
        self.local_steps = local_steps
        self.history: list[RoundRecord] = []
        # the round whose starting model each client holds (0: the shared checkpoint x_0)
        self.synced = [0] * num_clients

    def state_dict(self) -> dict[str, Any]:
        """The history as encoded records (the bytes that cross the wire) and the sync points."""
        return {"history": [rec.encode() for rec in self.history], "synced": list(self.synced)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [RoundRecord.decode(data) for data in state["history"]]
        if len(state["synced"]) != len(self.synced):
            raise ValueError(f"{len(state['synced'])} saved clients, {len(self.synced)} here")
        self.synced = list(state["synced"])

    def plan(self, rnd: int) -> RoundPlan:
        return RoundPlan(rnd, round_seeds(self.run_seed, rnd, self.local_steps))

    def catch_up(self, client: int, rnd: int) -> list[RoundRecord]:
        """Records of the rounds `client` missed; it holds x_rnd once it has replayed them."""
        missed = [rec for rec in self.history if rec.round >= self.synced[client]]
        self.synced[client] = rnd
        return missed

    @staticmethod
    def aggregate(plan: RoundPlan, reports: Sequence[ClientReport]) -> RoundRecord:
        for report in reports:
            if report.round != plan.round:
                raise ValueError(f"report for round {report.round} in round {plan.round}")
        stacked = np.stack([r.scalars.astype(np.float64) for r in reports])
        return RoundRecord(plan.round, plan.seeds, stacked.mean(axis=0).astype(np.float32))

    def commit(self, record: RoundRecord) -> None:
        """Append the record and forget those every client has already replayed."""
        self.history.append(record)
        oldest = min(self.synced)
        self.history = [rec for rec in self.history if rec.round >= oldest]
