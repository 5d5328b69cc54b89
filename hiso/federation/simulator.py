"""The round loop: one shared model, simulated clients that are only data and a sync point.

After catch-up every sampled client holds x_r, so the simulator keeps one model (the server's,
which is also every sampled client's starting point) and evaluates all sampled clients' batches
at each perturbed point in one concatenated forward. Catch-up is still sent and metered: every
record a client missed crosses the wire, and a listener on the wire can rebuild any client's
model from those bytes alone.

The full-update family (FedAvg, FedAdam/FedYogi/FedAdagrad, FedZO) shares one round: each sampled
client downloads the model, runs its client update (SGD or ZO) in its own storage and uploads its
model change; a server optimiser moves the model by the mean change.

Under several processes (hiso/federation/processes.py) every process holds a replica and runs
the same round: it evaluates only its share of the sampled clients, gathers every client's
scalars (or model change) in client order, and applies the same record; the main process alone
evaluates held-out splits and keeps the best round's model.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

from hiso.config import ADAPTIVE_SERVER_RULES, FIRST_ORDER_ALGORITHMS, FULL_UPDATE_ALGORITHMS
from hiso.data.partition import dirichlet_partition, iid_partition
from hiso.federation.processes import Processes
from hiso.federation.server import Server, sample_clients
from hiso.federation.wire import Wire
from hiso.optim.curvature import CurvatureProbe
from hiso.optim.fedzo import client_seeds, zo_client_update
from hiso.optim.schedule import LRSchedule
from hiso.optim.server import AdaptiveStep, MeanStep, ServerOptimizer
from hiso.optim.sgd import sgd_client_update, training
from hiso.optim.zo import Curvature, LossFn, ZeroOrderOptimizer, ZOSettings, evaluated_at
from hiso.protocol import ClientReport, ModelPayload, RoundPlan, RoundRecord
from hiso.schema import RunConfig
from hiso.seeding import derive_seed, numpy_generator
from hiso.tasks.base import Batch, HeldOut, Task
from hiso.tasks.buckets import length_buckets
from hiso.tracking.records import human_bytes

# The price of one forward, in padded tokens, when grouping a batch by length on CPU: measured on
# a 2-core EPYC with SmolLM2-135M (one extra forward costs about as much as 64 more tokens).
CPU_FORWARD_TOKENS = 64

logger = logging.getLogger(__name__)


# A full-update client: (round, client id, its batches per local step, where to write its model)
# -> its loss at the server model.
ClientUpdate = Callable[[int, int, list[list[int]], list[torch.Tensor]], float]


class NonFiniteLossError(RuntimeError):
    """A round produced a NaN or infinite loss or scalar under nan_policy=stop, or
    federation.max_skipped_rounds rounds in a row did under nan_policy=skip."""


@dataclass
class SimulatedClient:
    """A client is its shard, its position in its own shuffled data order, and nothing else."""

    id: int
    indices: np.ndarray
    run_seed: int
    epoch: int = 0
    cursor: int = 0
    order: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def next_batch(self, size: int) -> list[int]:
        """The next `size` examples of the shard, reshuffled (seeded) at every pass."""
        if len(self.indices) == 0:
            raise ValueError(f"client {self.id} has no training examples: its shard is empty")
        out: list[int] = []
        while len(out) < size:
            if self.cursor == 0:
                self._shuffle()
            take = min(size - len(out), len(self.order) - self.cursor)
            out.extend(int(i) for i in self.order[self.cursor : self.cursor + take])
            self.cursor += take
            if self.cursor == len(self.order):
                self.cursor, self.epoch = 0, self.epoch + 1
        return out

    def _shuffle(self) -> None:
        rng = numpy_generator(self.run_seed, "data", self.id, self.epoch)
        self.order = rng.permutation(self.indices)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at the saved position: the epoch's order is regenerated from its seed."""
        self.epoch, self.cursor = state["epoch"], state["cursor"]
        if self.cursor:
            self._shuffle()


def lr_schedule(cfg: RunConfig) -> LRSchedule:
    o = cfg.optim
    return LRSchedule(o.lr, o.lr_schedule, max(cfg.federation.rounds, 1))


def server_optimizer(cfg: RunConfig, x: Sequence[torch.Tensor]) -> ServerOptimizer:
    """The full-update family's server step: the plain mean (FedAvg, FedZO) or an adaptive rule."""
    a, o = cfg.algo, cfg.optim
    rule = ADAPTIVE_SERVER_RULES.get(a.name)
    if rule is None:
        return MeanStep()
    lr = LRSchedule(
        o.lr if a.server_lr is None else a.server_lr, o.lr_schedule, max(cfg.federation.rounds, 1)
    )
    return AdaptiveStep(rule, lr, x, a.server_beta1, a.server_beta2, a.server_tau)


def free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def direction_cache_decision(
    cfg: RunConfig, num_parameters: int, device: torch.device
) -> tuple[bool, str]:
    """Whether the zeroth-order optimizer keeps a step's P directions (P x d float32 values)
    between perturbing and updating, and why: algo.direction_cache=on/off as set, or auto: on
    when they fit in a quarter of the memory free now (the GPU's, else the machine's)."""
    a = cfg.algo
    if a.name in FIRST_ORDER_ALGORITHMS:
        return False, f"{a.name} is first-order: no directions"
    if a.direction_cache != "auto":
        return a.direction_cache == "on", f"algo.direction_cache={a.direction_cache}"
    need, free = 4 * a.num_perturbations * num_parameters, free_memory_bytes(device)
    on = need <= free // 4
    return on, (
        f"auto: P x d float32 values take {human_bytes(need)}, "
        f"{'within' if on else 'more than'} a quarter of the {human_bytes(free)} free on "
        f"{device.type}"
    )


def zo_settings(
    cfg: RunConfig, device: torch.device | None = None, cache_directions: bool = False
) -> ZOSettings:
    """The optimizer settings of a config, with the direction cache as decided (it changes speed,
    never results) and the automatic direction thread count, which needs the device (torch's
    threads on CPU, else 1)."""
    a = cfg.algo
    threads = a.direction_threads
    if threads is None:
        threads = torch.get_num_threads() if device is not None and device.type == "cpu" else 1
    curvature = None
    if a.name == "hiso":
        curvature = Curvature(
            beta=a.beta,
            eps=a.eps,
            floor=a.curvature_floor,
            every_step=a.curvature_steps == "every",
            scope=a.curvature_scope,
        )
    return ZOSettings(
        num_perturbations=a.num_perturbations,
        mu=a.mu,
        lr=lr_schedule(cfg),
        central=a.difference == "central",
        momentum=cfg.optim.momentum,
        curvature=curvature,
        cache_directions=cache_directions,
        threads=threads,
    )


def forward_autocast(cfg: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast around forwards when model.forward_dtype asks for it. float32 forwards
    stay float32 on a GPU: cuDNN's default runs convolutions in TF32, whose 10-bit mantissa is
    coarser than the perturbations a finite difference measures."""
    if cfg.model.forward_dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
    return contextlib.nullcontext()


def bucket_policy(setting: str, device: torch.device) -> tuple[int, int]:
    """federation.length_buckets on `device`: (most forwards per evaluated batch, price of one
    forward in tokens). auto groups by length on CPU, where a forward costs about what its padded
    tokens cost, and keeps one forward on a GPU, where a small batch underuses the device; N
    splits into at most N forwards with the least padding."""
    if setting == "off":
        return 1, 0
    if setting == "auto":
        return (8, CPU_FORWARD_TOKENS) if device.type == "cpu" else (1, 0)
    return int(setting), 0


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA allocation, or the peak RSS of this process's address space: VmHWM, which starts
    afresh at exec (ru_maxrss would carry over a large parent's peak into a child process)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# metric-name prefix of each held-out split
PREFIX: dict[HeldOut, str] = {"validation": "val", "test": "test"}
# examples x parameters of an evaluation worth a word before it starts (seconds on a CPU): a
# language model's held-out split, never the digits CNN's
ANNOUNCED_EVALUATION = 10**9


class Simulation:
    """The federation over one model. `best_model_path` is where the model of the best
    validation round is kept until the end, when the test split scores it (default: a temporary
    file, removed after the run). `processes`: this process's place among those that run the
    rounds together (default: alone)."""

    def __init__(
        self,
        cfg: RunConfig,
        model: nn.Module,
        task: Task,
        device: torch.device,
        best_model_path: Path | None = None,
        processes: Processes | None = None,
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
        self.buckets = bucket_policy(str(f.length_buckets), device)
        self.wire = Wire()
        self.server = Server(cfg.seed, f.num_clients, f.local_steps)
        self.work = [torch.empty_like(x) for x in self.master]
        self._local: list[torch.Tensor] | None = None
        self.zo: ZeroOrderOptimizer | None = None
        self.server_optimizer: ServerOptimizer | None = None
        self.client_update: ClientUpdate | None = None
        name = cfg.algo.name
        first_order = name in FIRST_ORDER_ALGORITHMS
        # (on, why): reported in the summary with the bytes the cache holds
        self.direction_cache = direction_cache_decision(cfg, self.num_parameters, device)
        if not first_order:
            settings = zo_settings(cfg, device, cache_directions=self.direction_cache[0])
            self.zo = ZeroOrderOptimizer(settings, self.master)
        if name in FULL_UPDATE_ALGORITHMS:
            self.server_optimizer = server_optimizer(cfg, self.master)
            self.client_update = self._sgd_client if first_order else self._zo_client
            # the client's model: SGD trains in `work`, ZO needs `work` for perturbed points
            self.client_model = (
                self.work if first_order else [torch.empty_like(x) for x in self.master]
            )
        else:
            assert self.zo is not None
            self.state = self.zo.init_state(self.master)
        self.probe = None
        if self.client_update is None and self.state.curvature is not None:
            self.probe = CurvatureProbe([h.shape for h in self.state.curvature], device, cfg.seed)
        # selection on the validation split when the task has one (else nothing is selected)
        self.selection: HeldOut | None = (
            "validation" if "validation" in task.heldout_splits() else None
        )
        self.best_accuracy: float | None = None
        self.best_round: int | None = None
        self._best_path = best_model_path
        # where a word before a long evaluation goes (the CLI's tracker prints it)
        self.announce: Callable[[str], None] = lambda message: None
        self._scratch: tempfile.TemporaryDirectory | None = None
        # the last round logged (None until round 0, the starting model, is) and the wall time
        # spent up to it: with the components' state, what a checkpoint restores
        self.round: int | None = None
        self.elapsed = 0.0
        # rounds skipped under nan_policy=skip: in all, and in a row up to the last round
        self.skipped_rounds = self.skipped_in_a_row = 0

    # state --------------------------------------------------------------------------------
    def _components(self) -> dict[str, Any]:
        """Every attribute that carries state across rounds (server, wire, optimizer states)."""
        return {
            name: value
            for name, value in vars(self).items()
            if hasattr(value, "state_dict") and not isinstance(value, nn.Module)
        }

    def state_dict(self) -> dict[str, Any]:
        """The run's state between rounds: trainable parameters, clients' data positions, the
        best validation round (its accuracy, number and parameters) and every stateful
        component's state_dict(). Tensors are the live ones (save them, or copy)."""
        best = None  # the best validation round's parameters, unless they are the current ones
        if self.best_round is not None and self.best_round != self.round:
            assert self._best_path is not None
            best = torch.load(self._best_path, map_location="cpu", weights_only=True)
        state: dict[str, Any] = {
            "round": self.round,
            "elapsed": self.elapsed,
            "skipped": [self.skipped_rounds, self.skipped_in_a_row],
            "parameters": list(self.master),
            "clients": [c.state_dict() for c in self.clients],
            "best": {"accuracy": self.best_accuracy, "round": self.best_round, "parameters": best},
        }
        for name, component in self._components().items():
            state[name] = component.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["parameters"]
        shapes = [tuple(x.shape) for x in self.master]
        if [tuple(t.shape) for t in saved] != shapes:
            raise ValueError("the saved parameters do not have this model's shapes")
        for x, t in zip(self.master, saved, strict=True):
            x.copy_(t)
        for client, position in zip(self.clients, state["clients"], strict=True):
            client.load_state_dict(position)
        for name, component in self._components().items():
            component.load_state_dict(state[name])
        self.round, self.elapsed = state["round"], state["elapsed"]
        self.skipped_rounds, self.skipped_in_a_row = state["skipped"]
        best = state["best"]
        self.best_accuracy, self.best_round = best["accuracy"], best["round"]
        if best["parameters"] is not None:
            self._keep_best(best["parameters"])
        elif self.best_round is not None:  # the best round is the checkpoint's own
            self._keep_best()

    def replica_tensors(self) -> dict[str, torch.Tensor]:
        """What every process's replica must hold bit for bit: the trainable parameters and the
        zeroth-order optimizer state (HiSo's curvature H, momentum), by name."""
        named = dict(zip(self.names, self.master, strict=True))
        if self.zo is not None and self.client_update is None:
            for kind, tensors in self.state.state_dict().items():
                for name, t in zip(self.names, tensors or (), strict=tensors is not None):
                    named[f"{kind} of {name}"] = t
        return named

    # forwards -----------------------------------------------------------------------------
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

    def evaluate(self, split: HeldOut) -> dict[str, float]:
        """The task's metrics on a held-out split at the current model, keyed `val_*`/`test_*`;
        an evaluation that takes a while is announced first (`announce`)."""
        size = self.task.heldout_size(split)
        if size * self.num_parameters >= ANNOUNCED_EVALUATION:
            self.announce(f"evaluating {size} examples of the {split} split")
        with torch.no_grad(), self.autocast():
            metrics = self.task.evaluate(self.model, self.device, split)
        return {f"{PREFIX[split]}_{k}": v for k, v in metrics.items()} | {
            f"{PREFIX[split]}_examples": size
        }

    def evaluate_round(self, done: int) -> dict[str, float]:
        """What round `done` scores: the selection split (or the test split when there is none)
        at round 0, every eval_every rounds and at the end; the test split at round 0, at the end
        and every test_every rounds; HiSo's curvature summary with each evaluation. Keeps the
        model of the best validation round for the test split to score at the end. Only the
        main process evaluates (the others return nothing)."""
        f = self.cfg.federation
        last = done == f.rounds
        every = f.eval_every and done % f.eval_every == 0
        out: dict[str, float] = {}
        if not self.processes.is_main:  # the other replicas hold the same model
            return out
        if done == 0 or last or every:
            out |= self.evaluate(self.selection or "test")
            if self.probe is not None:
                out |= self.probe.summary(self.state.curvature, self.cfg.algo.curvature_floor)
        if "test_accuracy" not in out and (
            done == 0 or last or (f.test_every and done % f.test_every == 0)
        ):
            out |= self.evaluate("test")
        accuracy = out.get("val_accuracy")
        if accuracy is not None and (self.best_accuracy is None or accuracy > self.best_accuracy):
            self.best_accuracy, self.best_round = accuracy, done
            if not last:
                self._keep_best()
        return out

    def _keep_best(self, parameters: Sequence[torch.Tensor] | None = None) -> None:
        """Save the best round's parameters (default: the current model's); on the main process
        only, which alone evaluates."""
        if not self.processes.is_main:
            return
        if self._best_path is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="hiso-best-")
            self._best_path = Path(self._scratch.name) / "best-model.pt"
        tmp = self._best_path.with_suffix(".tmp")
        torch.save([x.cpu() for x in (self.master if parameters is None else parameters)], tmp)
        tmp.replace(self._best_path)

    def test_at_best(self, final: dict[str, float]) -> dict[str, float | int | None]:
        """The test split scored with the model of the best validation round (`final`: the last
        round's metrics, which already hold it when the last round is the best)."""
        if self.best_round is None:
            return {"best_round": None, "test_accuracy_at_best": None}
        if self.best_round == self.cfg.federation.rounds:
            metrics = {k: final[k] for k in ("test_loss", "test_accuracy")}
        else:
            assert self._best_path is not None
            saved = torch.load(self._best_path, map_location=self.device)
            for w, x in zip(self.work, saved, strict=True):
                w.copy_(x)
            with evaluated_at(self.params, self.work):
                metrics = self.evaluate("test")
        return {
            "best_round": self.best_round,
            "test_accuracy_at_best": metrics["test_accuracy"],
            "test_loss_at_best": metrics["test_loss"],
        }

    # rounds -------------------------------------------------------------------------------
    def run_round(self, rnd: int) -> float:
        f = self.cfg.federation
        ids = sample_clients(self.cfg.seed, rnd, f.num_clients, f.clients_per_round)
        sampled = [self.clients[i] for i in ids]
        batches = [
            [c.next_batch(self.cfg.optim.batch_size) for _ in range(f.local_steps)] for c in sampled
        ]
        if self.client_update is not None:
            return self._full_update_round(rnd, sampled, batches)
        return self._zo_round(rnd, sampled, batches)

    def _zo_round(
        self, rnd: int, sampled: list[SimulatedClient], batches: list[list[list[int]]]
    ) -> float:
        assert self.zo is not None
        plan = self.server.plan(rnd)
        for c in sampled:
            for record in self.server.catch_up(c.id, rnd):
                self.wire.downlink(c.id, record)
            self.wire.downlink(c.id, plan)
        # Step 0 starts from x_r for every sampled client (of this process): one shared
        # evaluation.
        mine = self.processes.share(len(sampled))
        g0, f0 = self.zo.estimate(
            self.params,
            self.master,
            self.work,
            self.state,
            plan.seeds[0],
            self.client_losses([batches[j][0] for j in mine]),
        )
        # per client: its loss at x_r, then its K x P scalars (float32, exact in float64)
        rows = np.empty((len(mine), 1 + len(plan.seeds) * g0.shape[1]))
        for m, j in enumerate(mine):
            scalars = [g0[m]]
            if len(plan.seeds) > 1:
                scalars += self._local_steps(plan, g0[m], batches[j])
            rows[m] = np.concatenate([f0[m : m + 1], np.concatenate(scalars)])
        table = self.processes.gather_rows(rows, len(sampled))
        f0 = table[:, 0]
        reports = []
        for c, row in zip(sampled, table, strict=True):
            scalars = row[1:].astype(np.float32).reshape(len(plan.seeds), -1)
            sent = self.wire.uplink(c.id, ClientReport(rnd, scalars))
            reports.append(ClientReport.decode(sent))
        record = self.server.aggregate(plan, reports)
        if not (np.isfinite(record.scalars).all() and np.isfinite(f0).all()):
            self._non_finite(rnd)
            return float("nan")
        # the server applies exactly what the clients will receive
        record = RoundRecord.decode(record.encode())
        self.zo.apply_record(self.master, self.state, record)
        self.server.commit(record)
        return float(np.mean(f0))

    def _local_steps(
        self, plan: RoundPlan, g0: np.ndarray, batches: list[list[int]]
    ) -> list[np.ndarray]:
        """Steps 1..K-1 of one client on its own trajectory from x_r, thrown away afterwards."""
        assert self.zo is not None
        if self._local is None:
            self._local = [torch.empty_like(x) for x in self.master]
        for loc, x in zip(self._local, self.master, strict=True):
            loc.copy_(x)
        state, seeds = self.state.clone(), plan.seeds
        self.zo.local_step(self._local, state, plan.round, seeds[0], g0)
        out = []
        for k in range(1, len(seeds)):
            g, _ = self.zo.estimate(
                self.params,
                self._local,
                self.work,
                state,
                seeds[k],
                self.client_losses([batches[k]]),
            )
            out.append(g[0])
            if k < len(seeds) - 1:
                self.zo.local_step(self._local, state, plan.round, seeds[k], g[0])
        return out

    def _full_update_round(
        self, rnd: int, sampled: list[SimulatedClient], batches: list[list[list[int]]]
    ) -> float:
        """Every sampled client downloads x, runs its update and uploads its model change; the
        server optimiser moves x by the mean change. The changes are summed in client order,
        one slot of clients (one per process) at a time."""
        assert self.client_update is not None and self.server_optimizer is not None
        if self._local is None:
            self._local = [torch.empty_like(x) for x in self.master]
        total, client = self._local, self.client_model
        for t in total:
            t.zero_()
        mine: list[float] = []
        n, count = len(sampled), self.processes.count
        for first in range(0, n, count):
            j = first + self.processes.index
            if j < n:
                mine.append(self.client_update(rnd, sampled[j].id, batches[j], client))
                for y, x in zip(client, self.master, strict=True):
                    y.sub_(x)
            present = min(count, n - first)
            self.processes.add_slot(total, client, present)
            # every upload is a model change of the model's shapes: d float32 values
            for c in sampled[first : first + present]:
                self.wire.downlink(c.id, ModelPayload(tuple(self.master)))
                self.wire.uplink(c.id, ModelPayload(tuple(client)))
        losses = self.processes.gather_rows(np.array(mine).reshape(-1, 1), n)[:, 0]
        if not np.isfinite(losses).all() or not all(torch.isfinite(t).all() for t in total):
            self._non_finite(rnd)
            return float("nan")
        for t in total:
            t.div_(len(sampled))
        self.server_optimizer.step(self.master, total, rnd)
        return float(np.mean(losses))

    def _sgd_client(
        self, rnd: int, client: int, batches: list[list[int]], out: list[torch.Tensor]
    ) -> float:
        """K local SGD steps in train mode, dropout seeded by (run seed, round, client)."""
        collated = [self.task.batch(ix, self.device) for ix in batches]

        def batch_loss(step: int) -> torch.Tensor:
            with self.autocast():
                return self.task.loss(self.model, collated[step]).mean()

        lr = lr_schedule(self.cfg).at(rnd)
        with training(self.model, derive_seed(self.cfg.seed, "dropout", rnd, client), self.device):
            return sgd_client_update(self.params, self.master, out, lr, len(batches), batch_loss)

    def _zo_client(
        self, rnd: int, client: int, batches: list[list[int]], out: list[torch.Tensor]
    ) -> float:
        """K local ZO steps on the client's own directions (FedZO)."""
        assert self.zo is not None
        seeds = client_seeds(self.server.plan(rnd).seeds, client)
        return zo_client_update(
            self.zo,
            self.params,
            self.master,
            out,
            self.work,
            rnd,
            seeds,
            lambda step: self.client_losses([batches[step]]),
        )

    def _non_finite(self, rnd: int) -> None:
        if self.cfg.nan_policy == "stop":
            raise NonFiniteLossError(
                f"round {rnd + 1}: a client's loss or scalar is NaN or infinite "
                "(nan_policy=stop; set nan_policy=skip to drop such rounds, or lower optim.lr)"
            )

    # loop ---------------------------------------------------------------------------------
    def run(
        self,
        log: Callable[[dict[str, float | int]], None],
        stop: Callable[[], bool] = lambda: False,
        on_round: Callable[[], None] | None = None,
    ) -> dict[str, float | int | None]:
        """Run the rounds left: log round 0 (the starting model) unless a restored state has, then
        every round after it. `stop()` is asked before each round (True ends the loop early);
        `on_round()` is called after each round is logged (e.g. to write a checkpoint). The test
        split scores the best validation round's model once the last round is done."""
        f = self.cfg.federation
        start = time.perf_counter() - self.elapsed
        record: dict[str, float | int] | None = None
        if self.round is None:
            record = {
                "round": 0,
                **self.wire.close_round(),
                "round_time": 0.0,
                "wall_time": 0.0,
                **self.evaluate_round(0),
            }
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
            if np.isfinite(train_loss):
                self.skipped_in_a_row = 0
            else:
                record["skipped"] = 1
                self.skipped_rounds += 1
                self.skipped_in_a_row += 1
            record.update(self.evaluate_round(rnd + 1))
            self.elapsed = time.perf_counter() - start
            record["wall_time"] = self.elapsed
            self.round = rnd + 1
            log(record)
            if self.skipped_in_a_row >= f.max_skipped_rounds:
                raise NonFiniteLossError(
                    f"rounds {self.round - self.skipped_in_a_row + 1}-{self.round}: "
                    f"{self.skipped_in_a_row} rounds in a row had a NaN or infinite loss or "
                    f"scalar and were skipped (nan_policy=skip, federation.max_skipped_rounds="
                    f"{f.max_skipped_rounds}), so the model is still that of round "
                    f"{self.round - self.skipped_in_a_row}; lower optim.lr or change algo.mu"
                )
            if on_round is not None:
                on_round()
        extras: dict[str, float | int | None] = {
            "peak_memory_bytes": peak_memory_bytes(self.device),
            "direction_cache": "on" if self.direction_cache[0] else "off",
            "direction_cache_reason": self.direction_cache[1],
            "direction_cache_bytes": 0 if self.zo is None else self.zo.cache_bytes,
            "num_parameters": self.num_parameters,
            "skipped_rounds": self.skipped_rounds,
        }
        if self.round == f.rounds and self.processes.is_main:
            # no record when resumed at the end (no round ran): the final model's scores
            extras |= self.test_at_best(record if record is not None else self.evaluate("test"))
        return extras
