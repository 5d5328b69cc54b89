"""The round loop: one shared model, simulated clients that are only data and a sync point, and
the algorithm component (hiso/algorithms/) that the algo group selects.

The simulation samples clients and their batches, hands them to the component's round (which
moves its messages over the wire), counts NaN and zero-scalar rounds (hiso/federation/health.py),
lets hiso/federation/evaluation.py score the rounds, and saves and restores the run's state.
Under several processes (hiso/federation/processes.py) every process holds a replica and runs the
same round; the main process alone evaluates held-out splits and keeps the best round's model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hiso.algorithms import Workspace, algorithm_class
from hiso.algorithms.base import Batches
from hiso.data.partition import dirichlet_partition, iid_partition
from hiso.federation.clients import SimulatedClient
from hiso.federation.device import direction_cache_decision, peak_memory_bytes
from hiso.federation.evaluation import Evaluation
from hiso.federation.forwards import Forwards
from hiso.federation.health import RoundHealth
from hiso.federation.processes import Processes
from hiso.federation.server import sample_clients
from hiso.federation.wire import Wire
from hiso.schema import RunConfig
from hiso.tasks.base import Task

logger = logging.getLogger(__name__)


class Simulation:
    """The federation over one model. `best_model_path` is where the model of the best
    validation round is kept until the end, when the test split scores it (default: a temporary
    file, removed after the run). `processes`: this process's place among those that run the
    rounds together (default: alone). `best_by_replay`: the state (a snapshot) leaves out the
    best round's parameters, which `resume` rebuilds from the trajectory (a replayable run)."""

    def __init__(
        self,
        cfg: RunConfig,
        model: nn.Module,
        task: Task,
        device: torch.device,
        best_model_path: Path | None = None,
        processes: Processes | None = None,
        best_by_replay: bool = False,
    ) -> None:
        self.cfg = cfg
        self.model = model.to(device).eval()
        self.task = task
        self.device = device
        self.processes = processes or Processes(device=device)
        f = cfg.federation
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in trainable]
        self.params = [p for _, p in trainable]
        self.master = [p.data for p in self.params]
        if any(x.dtype != torch.float32 for x in self.master):
            raise TypeError("master weights must be float32")
        self.num_parameters = sum(x.numel() for x in self.master)
        labels = task.train_labels()
        if f.partition == "dirichlet" and labels is not None:
            shards = dirichlet_partition(labels, f.num_clients, f.dirichlet_alpha, cfg.seed)
        else:
            if f.partition == "dirichlet":
                logger.warning(
                    "federation.partition=dirichlet: dataset %s has no class labels, so its "
                    "training examples are split IID",
                    cfg.dataset.name,
                )
            shards = iid_partition(task.num_train, f.num_clients, cfg.seed)
        self.clients = [SimulatedClient(i, s, cfg.seed) for i, s in enumerate(shards)]
        self.forwards = Forwards(cfg, self.model, task, device)
        self.wire = Wire()
        self.work = [torch.empty_like(x) for x in self.master]
        component = algorithm_class(cfg.algo.name)
        # (on, why): reported in the summary with the bytes the cache holds
        self.direction_cache = direction_cache_decision(
            cfg, component.uses_directions, self.num_parameters, device
        )
        space = Workspace(
            cfg, self.model, self.params, self.master, self.work, device, self.forwards,
            self.wire, self.processes,
        )  # fmt: skip
        self.algorithm = component(space, self.direction_cache[0])
        self.evaluation = Evaluation(
            cfg, self.forwards, self.params, self.master, self.work, self.processes,
            best_model_path,
        )  # fmt: skip
        # the last round logged (None until round 0, the starting model, is) and the wall time
        # spent up to it: with the components' state, what a checkpoint restores
        self.round: int | None = None
        self.elapsed = 0.0
        self.health = RoundHealth(cfg)
        self.best_by_replay = best_by_replay

    # state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The run's state between rounds: trainable parameters, clients' data positions, the
        best validation round (its accuracy, number and parameters), the wire's counters and the
        algorithm's state. Tensors are the live ones (save them, or copy)."""
        return {
            "round": self.round,
            "elapsed": self.elapsed,
            **self.health.state_dict(),
            "parameters": list(self.master),
            "clients": [c.state_dict() for c in self.clients],
            "best": self.evaluation.state_dict(self.round, not self.best_by_replay),
            "wire": self.wire.state_dict(),
            "algorithm": self.algorithm.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["parameters"]
        shapes = [tuple(x.shape) for x in self.master]
        if [tuple(t.shape) for t in saved] != shapes:
            raise ValueError("the saved parameters do not have this model's shapes")
        for x, t in zip(self.master, saved, strict=True):
            x.copy_(t)
        for client, position in zip(self.clients, state["clients"], strict=True):
            client.load_state_dict(position)
        self.wire.load_state_dict(state["wire"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.round, self.elapsed = state["round"], state["elapsed"]
        self.health.load_state_dict(state)
        self.evaluation.load_state_dict(state["best"])

    def replica_tensors(self) -> dict[str, torch.Tensor]:
        """What every process's replica must hold bit for bit: the trainable parameters and the
        algorithm's optimizer state (HiSo's curvature H, momentum), by name."""
        named = dict(zip(self.names, self.master, strict=True))
        return named | self.algorithm.replica_tensors(self.names)

    def resume(
        self,
        snapshot: dict[str, Any] | None,
        entries: Sequence[bytes] = (),
        history: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Continue from a snapshot's state (None: the starting model), then replay the
        trajectory's `entries` after it (`history`: the run's metrics of rounds 0..len(entries)).
        A snapshot without its best round's parameters gets them by a replay from the start."""
        if snapshot is not None:
            best = snapshot["best"]
            if best.get("replay"):
                if len(entries) < best["round"]:
                    raise ValueError(
                        f"the snapshot of round {snapshot['round']} leaves round "
                        f"{best['round']}'s model (the best) to the trajectory, which holds "
                        f"rounds 0-{len(entries)} only"
                    )
                self.replay(entries[: best["round"]])
                self.evaluation.keep_best()
            self.load_state_dict(snapshot)
        if entries:
            self.replay(entries, history)

    def replay(self, entries: Sequence[bytes], history: Sequence[dict[str, Any]] = ()) -> None:
        """Bring the simulation from its round (None: the starting model) to round len(entries)
        by applying the trajectory's entries again, without a forward: the model, the optimizer
        state, the clients' data positions, the server's history and the wire's counters end as
        the run's did. `history`, the run's metrics of rounds 0..len(entries), gives the rest of
        the state: the best validation round (its model kept as the replay passes it), the wall
        time and the skipped rounds."""
        if not self.algorithm.replayable:
            raise TypeError(f"algo={self.cfg.algo.name}: its rounds are not replayable")
        start = self.round
        rows = list(history)
        if rows and [r["round"] for r in rows] != list(range(len(entries) + 1)):
            raise ValueError(f"the metrics do not hold rounds 0-{len(entries)} in order")
        best = self.evaluation.restore_best(rows, start)
        if self.round is None:
            self.wire.close_round()  # round 0: nothing crossed
            self.round = 0
        for rnd in range(self.round, len(entries)):
            self.algorithm.replay_round(rnd, self.sample(rnd)[0], entries[rnd])
            self.wire.close_round()
            self.round = rnd + 1
            if self.round == best:
                self.evaluation.keep_best()
        if rows:
            self.elapsed = rows[-1]["wall_time"]
            self.health.restore_skips(rows)

    # rounds -------------------------------------------------------------------------------
    def sample(self, rnd: int) -> tuple[list[int], Batches]:
        """The clients of round `rnd` and their batches (each drawn moves its client's data
        position)."""
        f = self.cfg.federation
        ids = sample_clients(self.cfg.seed, rnd, f.num_clients, f.clients_per_round)
        batches = [
            [self.clients[i].next_batch(self.cfg.optim.batch_size) for _ in range(f.local_steps)]
            for i in ids
        ]
        return ids, batches

    def run_round(self, rnd: int) -> float:
        ids, batches = self.sample(rnd)
        loss = self.algorithm.run_round(rnd, ids, batches)
        self.health.check_loss(rnd, loss)
        return loss

    def _evaluate_round(self, done: int) -> dict[str, float]:
        return self.evaluation.evaluate_round(done, lambda: self.algorithm.evaluation_summary(done))

    # loop ---------------------------------------------------------------------------------
    def run(
        self,
        log: Callable[[dict[str, float | int]], None],
        stop: Callable[[], bool] = lambda: False,
        on_round: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run the rounds left: log round 0 (the starting model) unless a restored state has, then
        every round after it. `stop()` is asked before each round (True ends the loop early);
        `on_round()` is called after each round is logged (e.g. to write a checkpoint). The test
        split scores the best validation round's model once the last round is done."""
        f = self.cfg.federation
        start = time.perf_counter() - self.elapsed
        record: dict[str, float | int] | None = None
        if self.round is None:
            record = {"round": 0, **self.wire.close_round(), "round_time": 0.0, "wall_time": 0.0}
            record |= self._evaluate_round(0)
            log(record)
            self.round = 0
        for rnd in range(self.round, f.rounds):
            if self.processes.any(stop()):
                break
            t0 = time.perf_counter()
            train_loss = self.run_round(rnd)
            if f.checksum_every and ((rnd + 1) % f.checksum_every == 0 or rnd + 1 == f.rounds):
                self.processes.check_replicas(rnd + 1, self.replica_tensors())
            record = {
                "round": rnd + 1,
                "train_loss": train_loss,
                **self.wire.close_round(),
                "round_time": time.perf_counter() - t0,
            }
            record |= self.health.after_round(rnd + 1, train_loss, self.algorithm.zero_scalars)
            record.update(self._evaluate_round(rnd + 1))
            self.elapsed = time.perf_counter() - start
            record["wall_time"] = self.elapsed
            self.round = rnd + 1
            log(record)
            self.health.check_skips(self.round)
            if on_round is not None:
                on_round()
        extras: dict[str, Any] = {
            "peak_memory_bytes": peak_memory_bytes(self.device),
            "direction_cache": "on" if self.direction_cache[0] else "off",
            "direction_cache_reason": self.direction_cache[1],
            "direction_cache_bytes": self.algorithm.cache_bytes,
            "num_parameters": self.num_parameters,
            **self.health.summary(),
        }
        if self.round == f.rounds and self.processes.is_main and f.score_test:
            # no record when resumed at the end (no round ran): the final model's scores
            final = record if record is not None else self.evaluation.evaluate("test", f.rounds)
            extras |= self.evaluation.test_at_best(final)
        return extras
