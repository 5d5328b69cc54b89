"""FedKSeed (Qin et al., "Federated Full-Parameter Tuning of Billion-Sized Language Models with
Communication Cost under 18 Kilobytes", ICML 2024, arXiv 2312.06353): zeroth-order federated
tuning over a pool of K candidate seeds (hiso/optim/seed_pool.py).

A round: the server sends each sampled client the accumulated scalar A_j of every candidate seed
(SeedPool), from which the client rebuilds the latest model in one pass whatever it missed; each
of its local steps samples one candidate seed (uniformly here; FedKSeed-Pro: weighted), takes a
central difference along that seed's direction with algo.mu, moves its local model by
-lr * g * z and records (seed index, g); it sends those pairs (SeedReport). The server adds each
client's scalars to their seeds, averages over the sampled clients (the authors' code with
--equal_weight: FederatedScope, branch FedKSeed, server.py, Server.aggregate_seed_pool; by
default that code weights clients by their number of batches, equal here under an IID split),
adds the result to A and rebuilds x = x_0 - lr * sum_j A_j z_j.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiso.algorithms.base import Algorithm, Batches, Workspace, register
from hiso.algorithms.scalar import zo_settings
from hiso.optim.seed_pool import PoolRebuild, candidate_seeds
from hiso.optim.zo import ZeroOrderOptimizer, ZOSettings, ZOState
from hiso.protocol import SeedPool, SeedReport
from hiso.schema import ConfigError, RunConfig
from hiso.seeding import numpy_generator


@register
class FedKSeed(Algorithm):
    """Replayable: a round's entry is its clients' (seed index, scalar) pairs, in client order."""

    name = "fedkseed"
    replayable = True

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        cfg = space.cfg
        self.zo = ZeroOrderOptimizer(
            self.settings(cfg, space.device, cache_directions), space.master
        )
        self.seeds = candidate_seeds(cfg.seed, cfg.algo.seed_pool)
        self.rebuild = PoolRebuild(self.zo, [x.detach().clone() for x in space.master], self.seeds)
        # A_j, summed in float64 by the server; every party uses its float32 value (the wire's)
        self.accumulated = np.zeros(len(self.seeds), dtype=np.float64)
        self._local: list[torch.Tensor] | None = None
        self._entry = b""

    @classmethod
    def check(cls, cfg: Any) -> None:
        a, o, f = cfg.algo, cfg.optim, cfg.federation
        if not 1 <= a.seed_pool < 2**32:
            raise ConfigError("algo.seed_pool", a.seed_pool, "an integer from 1 to 2^32 - 1")
        # (field, its value, the one value allowed, why): the rule the paper's rebuild needs
        required = (
            ("optim.lr_schedule", o.lr_schedule, "constant", "every party rebuilds the model as "
             "x_0 - lr * sum_j A_j z_j from the accumulated per-seed scalars, which holds only "
             "for one lr in every round"),
            ("algo.num_perturbations", a.num_perturbations, 1,
             "one candidate seed's direction per local step"),
            ("algo.difference", a.difference, "central", "the paper's"),
            ("optim.momentum", o.momentum, 0, "the model is a function of the accumulated scalars"),
            ("federation.client_updates", f.client_updates, "parallel",
             "every sampled client starts from x_r"),
        )  # fmt: skip
        for field, value, allowed, why in required:
            if value != allowed:
                raise ConfigError(field, value, f"{allowed} with algo={cls.name} ({why})")

    @classmethod
    def settings(
        cls, cfg: RunConfig, device: torch.device | None = None, cache_directions: bool = False
    ) -> ZOSettings:
        """What every party builds its optimizer from: P = 1, central difference, constant lr."""
        return zo_settings(cfg, device, cache_directions)

    @property
    def cache_bytes(self) -> int:
        return self.zo.cache_bytes

    # state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors (a checkpoint loads with weights_only): A in float64, and the rebuild's integer
        sums where it keeps them."""
        accumulated = torch.from_numpy(self.accumulated.copy())
        return {"accumulated": accumulated} | self.rebuild.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = torch.as_tensor(state["accumulated"], dtype=torch.float64).numpy()
        if saved.shape != self.accumulated.shape:
            raise ValueError(f"{saved.size} saved seeds, algo.seed_pool={len(self.seeds)} here")
        self.accumulated[:] = saved
        self.rebuild.load_state_dict(state)

    def replica_tensors(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"accumulated per-seed scalars": torch.from_numpy(self.accumulated)}

    # the steps ------------------------------------------------------------------------------
    def sampling_probabilities(self) -> np.ndarray | None:
        """The candidate seeds' probabilities for this round's local steps (None: uniform)."""
        return None

    def sample_indices(
        self, rnd: int, client: int, probabilities: np.ndarray | None, steps: int
    ) -> np.ndarray:
        """The candidate seed index of each of `client`'s local steps in round `rnd`."""
        gen = numpy_generator(self.space.cfg.seed, "fedkseed-sampling", rnd, client)
        if probabilities is None:
            return gen.integers(0, len(self.seeds), size=steps)
        p = probabilities.astype(np.float64)  # float32 on the wire: renormalised
        return gen.choice(len(self.seeds), size=steps, p=p / p.sum())

    def client_update(
        self, rnd: int, client: int, probabilities: np.ndarray | None, batches: list[list[int]]
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """One client's local steps from x_r on its own trajectory: its loss at x_r (the mean of
        the first step's two perturbed losses), the steps' seed indices and scalars."""
        s = self.space
        if self._local is None:
            self._local = s.scratch()
        for loc, x in zip(self._local, s.master, strict=True):
            loc.copy_(x)
        state = ZOState()
        indices = self.sample_indices(rnd, client, probabilities, len(batches))
        scalars = np.empty(len(batches), dtype=np.float32)
        loss = float("nan")
        for k, (j, batch) in enumerate(zip(indices, batches, strict=True)):
            seed = self.seeds[j]
            g, f = self.zo.estimate(
                s.params, self._local, s.work, state, seed, s.forwards.client_losses([batch])
            )
            if k == 0:
                loss = float(f[0])
            scalars[k] = g[0, 0]
            if k < len(batches) - 1:
                self.zo.local_step(self._local, state, rnd, seed, g[0])
        return loss, indices, scalars

    def commit(self, reports: Sequence[SeedReport]) -> None:
        """A += the clients' mean per-seed sums of scalars; x <- x_0 - lr * sum_j A_j z_j."""
        delta = np.zeros_like(self.accumulated)
        for report in reports:
            np.add.at(delta, report.indices, report.scalars.astype(np.float64))
        self.accumulated += delta / len(reports)
        self.rebuild(self.space.master, self.accumulated.astype(np.float32))
        self._entry = b"".join(
            np.ascontiguousarray(r.indices, dtype="<u4").tobytes()
            + np.ascontiguousarray(r.scalars, dtype="<f4").tobytes()
            for r in reports
        )

    def trajectory_entry(self) -> bytes:
        return self._entry

    def _send_pool(self, rnd: int, clients: Sequence[int]) -> np.ndarray | None:
        """The round's SeedPool to each sampled client; the probabilities they received."""
        pool = SeedPool(rnd, self.accumulated.astype(np.float32), self.sampling_probabilities())
        # each sampled client rebuilds x_r from these bytes (one pass, whatever it missed); the
        # server's model is the same pass over the same values, so the clients start from it
        received = [SeedPool.decode(self.space.wire.downlink(c, pool)) for c in clients]
        return received[0].probabilities

    def replay_round(self, rnd: int, clients: Sequence[int], entry: bytes) -> None:
        self._send_pool(rnd, clients)
        steps = self.space.cfg.federation.local_steps
        self._entry = b""
        size = 8 * steps * len(clients)
        if entry and len(entry) != size:
            raise ValueError(
                f"round {rnd + 1}'s trajectory entry holds {len(entry)} bytes, not the {size} of "
                f"{len(clients)} clients x {steps} (seed index, scalar) pairs"
            )
        reports = []
        for m, c in enumerate(clients):
            if entry:
                pairs = entry[8 * steps * m : 8 * steps * (m + 1)]
                indices = np.frombuffer(pairs, dtype="<u4", count=steps).astype(np.int64)
                scalars = np.frombuffer(pairs, dtype="<f4", offset=4 * steps).copy()
            else:  # a skipped round: the reports' sizes, not their values
                indices, scalars = np.zeros(steps, np.int64), np.zeros(steps, np.float32)
            self.space.wire.uplink(c, SeedReport(rnd, indices, scalars))
            reports.append(SeedReport(rnd, indices, scalars))
        if entry:
            self.commit(reports)

    # the round -----------------------------------------------------------------------------
    def run_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        s = self.space
        wire, processes = s.wire, s.processes
        self._entry = b""
        probabilities = self._send_pool(rnd, clients)
        mine = processes.share(len(clients))
        steps = len(batches[0])
        rows = np.array(
            [
                np.concatenate([[loss], indices, scalars])
                for loss, indices, scalars in (
                    self.client_update(rnd, clients[m], probabilities, batches[m]) for m in mine
                )
            ]
        ).reshape(len(mine), 1 + 2 * steps)
        table = processes.gather_rows(rows, len(clients))
        reports = []
        for c, row in zip(clients, table, strict=True):
            report = SeedReport(rnd, row[1 : 1 + steps].astype(np.int64), row[1 + steps :])
            reports.append(SeedReport.decode(wire.uplink(c, report)))
        if not (
            np.isfinite(table[:, 0]).all() and all(np.isfinite(r.scalars).all() for r in reports)
        ):
            return float("nan")
        self.zero_scalars = not any(r.scalars.any() for r in reports)
        self.commit(reports)
        return float(np.mean(table[:, 0]))
