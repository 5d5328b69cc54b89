"""The scalar-only family's round (DeComFL, HiSo, MeZO): the server sends seeds, each sampled
client sends K x P projected gradients, the server averages them into a round record, and every
party applies that record with the same pure function.

After catch-up every sampled client holds x_r, so the round keeps one model and evaluates all
sampled clients' batches at each perturbed point in one concatenated forward. Catch-up is still
sent and metered: every record a client missed crosses the wire, and a listener on the wire can
rebuild any client's model from those bytes alone. Under several processes each evaluates its
share of the clients and the scalars are gathered in client order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiso.algorithms.base import Algorithm, Batches, Workspace, lr_schedule
from hiso.federation.device import direction_threads
from hiso.federation.server import Server
from hiso.optim.zo import Curvature, ZeroOrderOptimizer, ZOSettings, ZOState
from hiso.protocol import ClientReport, RoundPlan, RoundRecord
from hiso.schema import ConfigError, RunConfig


def zo_settings(
    cfg: RunConfig,
    device: torch.device | None = None,
    cache_directions: bool = False,
    curvature: Curvature | None = None,
) -> ZOSettings:
    """The zeroth-order estimator and step of a config, with the direction cache as decided (it
    changes speed, never results) and the direction thread count for the device."""
    a = cfg.algo
    return ZOSettings(
        num_perturbations=a.num_perturbations,
        mu=a.mu,
        lr=lr_schedule(cfg),
        central=a.difference == "central",
        momentum=cfg.optim.momentum,
        curvature=curvature,
        cache_directions=cache_directions,
        threads=direction_threads(cfg, device),
    )


class ScalarOnly(Algorithm):
    """The family's round over a ZeroOrderOptimizer; a member says only how its settings differ
    (`settings`). Replayable: a round's entry is its record's K x P float32 scalars."""

    replayable = True

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        cfg, f = space.cfg, space.cfg.federation
        self.zo = ZeroOrderOptimizer(
            self.settings(cfg, space.device, cache_directions), space.master
        )
        self.server = Server(cfg.seed, f.num_clients, f.local_steps)
        self.state = self.init_state()
        self._local: list[torch.Tensor] | None = None
        self._entry = b""

    @classmethod
    def check(cls, cfg: Any) -> None:
        if cfg.federation.client_updates != "parallel":
            raise ConfigError(
                "federation.client_updates",
                cfg.federation.client_updates,
                f"parallel with algo={cls.name} (sequential chains the full-update family's "
                "clients; a scalar-only round has every sampled client start from x_r)",
            )

    @classmethod
    def settings(
        cls, cfg: RunConfig, device: torch.device | None = None, cache_directions: bool = False
    ) -> ZOSettings:
        """The settings every party (server, replicas, other processes) builds its optimizer
        from."""
        return zo_settings(cfg, device, cache_directions)

    def init_state(self) -> ZOState:
        return self.zo.init_state(self.space.master)

    @property
    def cache_bytes(self) -> int:
        return self.zo.cache_bytes

    def state_dict(self) -> dict[str, Any]:
        return {"server": self.server.state_dict(), "state": self.state.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.server.load_state_dict(state["server"])
        self.state.load_state_dict(state["state"])

    def replica_tensors(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        named = {}
        for kind, tensors in self.state.state_dict().items():
            for name, t in zip(names, tensors or (), strict=tensors is not None):
                named[f"{kind} of {name}"] = t
        return named

    # the interface's steps -----------------------------------------------------------------
    def client_update(
        self, plan: RoundPlan, batches: Batches
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The losses at x_r and the K x P scalars of the clients whose `batches` are given,
        all starting from x_r: step 0 in one shared evaluation, later steps per client."""
        s = self.space
        g0, f0 = self.zo.estimate(
            s.params,
            s.master,
            s.work,
            self.state,
            plan.seeds[0],
            s.forwards.client_losses([b[0] for b in batches]),
        )
        scalars = []
        for m, mine in enumerate(batches):
            steps = [g0[m]]
            if len(plan.seeds) > 1:
                steps += self._local_steps(plan, g0[m], mine)
            scalars.append(np.stack(steps))
        return f0, scalars

    def _local_steps(
        self, plan: RoundPlan, g0: np.ndarray, batches: list[list[int]]
    ) -> list[np.ndarray]:
        """Steps 1..K-1 of one client on its own trajectory from x_r, thrown away afterwards."""
        s = self.space
        if self._local is None:
            self._local = s.scratch()
        for loc, x in zip(self._local, s.master, strict=True):
            loc.copy_(x)
        state, seeds = self.state.clone(), plan.seeds
        self.zo.local_step(self._local, state, plan.round, seeds[0], g0)
        out = []
        for k in range(1, len(seeds)):
            g, _ = self.zo.estimate(
                s.params,
                self._local,
                s.work,
                state,
                seeds[k],
                s.forwards.client_losses([batches[k]]),
            )
            out.append(g[0])
            if k < len(seeds) - 1:
                self.zo.local_step(self._local, state, plan.round, seeds[k], g[0])
        return out

    def aggregate(self, plan: RoundPlan, reports: Sequence[ClientReport]) -> RoundRecord:
        return self.server.aggregate(plan, reports)

    def apply(self, params: Sequence[torch.Tensor], state: ZOState, record: RoundRecord) -> None:
        """The pure step the server, a client catching up and a replica all take."""
        self.zo.apply_record(params, state, record)

    # the round -----------------------------------------------------------------------------
    def _send_plan(self, rnd: int, clients: Sequence[int]) -> RoundPlan:
        """Each sampled client's catch-up (the records it missed) and the round's plan."""
        plan = self.server.plan(rnd)
        for c in clients:
            for record in self.server.catch_up(c, rnd):
                self.space.wire.downlink(c, record)
            self.space.wire.downlink(c, plan)
        return plan

    def _commit(self, record: RoundRecord) -> None:
        """The server applies exactly what the clients will receive, and keeps it."""
        record = RoundRecord.decode(record.encode())
        self.apply(self.space.master, self.state, record)
        self.server.commit(record)
        self._entry = np.ascontiguousarray(record.scalars, dtype="<f4").tobytes()

    def trajectory_entry(self) -> bytes:
        return self._entry

    def replay_round(self, rnd: int, clients: Sequence[int], entry: bytes) -> None:
        plan = self._send_plan(rnd, clients)
        shape = (len(plan.seeds), self.zo.settings.num_perturbations)
        for c in clients:  # the reports' values are not kept; their sizes are these
            self.space.wire.uplink(c, ClientReport(rnd, np.zeros(shape, dtype=np.float32)))
        self._entry = b""
        if not entry:  # a skipped round
            return
        if len(entry) != 4 * shape[0] * shape[1]:
            raise ValueError(
                f"round {rnd + 1}'s trajectory entry holds {len(entry)} bytes, not the "
                f"{4 * shape[0] * shape[1]} of K x P = {shape[0]} x {shape[1]} float32 scalars"
            )
        scalars = np.frombuffer(entry, dtype="<f4").reshape(shape)
        self._commit(RoundRecord(rnd, plan.seeds, scalars))

    def run_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        s = self.space
        wire, processes = s.wire, s.processes
        self._entry = b""
        plan = self._send_plan(rnd, clients)
        mine = processes.share(len(clients))
        f0, scalars = self.client_update(plan, [batches[j] for j in mine])
        # per client: its loss at x_r, then its K x P scalars (float32, exact in float64)
        rows = np.array(
            [np.concatenate([f0[m : m + 1], g.reshape(-1)]) for m, g in enumerate(scalars)]
        ).reshape(len(mine), 1 + len(plan.seeds) * self.zo.settings.num_perturbations)
        table = processes.gather_rows(rows, len(clients))
        reports = []
        for c, row in zip(clients, table, strict=True):
            sent = wire.uplink(
                c, ClientReport(rnd, row[1:].astype(np.float32).reshape(len(plan.seeds), -1))
            )
            reports.append(ClientReport.decode(sent))
        record = self.aggregate(plan, reports)
        if not (np.isfinite(record.scalars).all() and np.isfinite(table[:, 0]).all()):
            return float("nan")
        self.zero_scalars = not record.scalars.any()
        self._commit(record)
        return float(np.mean(table[:, 0]))
