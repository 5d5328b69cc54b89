"""Several processes, one run: accelerate's PartialState decides each process's rank and device
(gloo between CPU processes, NCCL between GPUs), each round's sampled clients are dealt over the
processes, and what the clients return is gathered back in client order, so that every process
builds and applies the same round record to its own replica of the model.

Clients are dealt round-robin: client j of a round (in sampled order) belongs to process
j mod N. Gathering slot s of every process then yields clients sN .. sN + N - 1 in order, which
lets full model changes be summed in client order one slot at a time (the same float additions
as one process, so the same bits). One process (plain `hiso-run`) is the special case in which
every collective returns its input without touching torch.distributed.

Replicas agree by construction; `check_replicas` proves it: a per-tensor checksum of the
parameters and optimizer state, gathered and compared, turns a divergence into an error that
names the round, the processes and the tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hiso.schema import ConfigError

# How long a process waits in a collective: the main process evaluates held-out splits alone
# while the others wait at the next round's first collective.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class ReplicaMismatchError(RuntimeError):
    """The processes' replicas of the model or optimizer state differ (found by the checksum of
    federation.checksum_every)."""


def checksum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per tensor, the sum of its 32-bit patterns as integers (int64): exact integer arithmetic,
    so equal bits give equal sums on any device in any order, and a changed entry changes the
    sum (unless changes cancel exactly). One read of each tensor, no copy."""
    return torch.stack([t.view(torch.int32).sum(dtype=torch.int64) for t in tensors])


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its index among `count` processes and its device."""

    index: int = 0
    count: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """The main process logs, writes every file and talks to wandb."""
        return self.index == 0

    def share(self, n: int) -> range:
        """Positions (in sampled order) of this process's clients among a round's `n`."""
        return range(self.index, n, self.count)

    def gather_rows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The float64 rows of all `n` clients in client order, from each process's rows of its
        share (shape (len(share(n)), width))."""
        if self.count == 1:
            return rows
        slots = -(-n // self.count)
        mine = torch.zeros(slots, rows.shape[1], dtype=torch.float64, device=self.device)
        mine[: len(rows)] = torch.from_numpy(np.asarray(rows, dtype=np.float64))
        parts = [torch.empty_like(mine) for _ in range(self.count)]
        dist.all_gather(parts, mine)
        # parts[r][s] is client s * count + r
        return torch.stack(parts, dim=1).reshape(slots * self.count, -1)[:n].cpu().numpy()

    def add_slot(
        self, total: Sequence[torch.Tensor], mine: Sequence[torch.Tensor], present: int
    ) -> None:
        """total += the tensors of the slot's `present` clients, in client order: this process's
        `mine` with one process, else every process's gathered parameter by parameter (processes
        from `present` on have no client in this slot and are skipped)."""
        for t, m in zip(total, mine, strict=True):
            if self.count == 1:
                t.add_(m)
                continue
            parts = [torch.empty_like(m) for _ in range(self.count)]
            dist.all_gather(parts, m.contiguous())
            for part in parts[:present]:
                t.add_(part)

    def any(self, flag: bool) -> bool:
        """Whether any process's `flag` is set (every process must ask)."""
        if self.count == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        """The main process's `value`, on every process."""
        if self.count == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def wait(self) -> None:
        """Return once every process has arrived here."""
        if self.count > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group together: each process waits here for the others (the main
        one finishes its files first), then the group is destroyed, so no process exits while
        another still holds a connection to it."""
        if self.count > 1:
            dist.barrier()
        self.leave()

    def leave(self) -> None:
        """Destroy the process group without waiting for the others (every way out of a run
        passes here, an error's too): a process that exits still holding its gloo group while
        a peer talks to it can die of SIGABRT in gloo's teardown (scripts/bench_gloo_exit.py)."""
        if self.count > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def check_replicas(self, rnd: int, named: dict[str, torch.Tensor]) -> None:
        """Compare the checksums of the named tensors across processes after round `rnd`; raise
        ReplicaMismatchError naming the round, the processes that differ from the main one and
        the tensors that differ."""
        if self.count == 1:
            return
        mine = checksum(list(named.values())).to(self.device)
        parts = [torch.empty_like(mine) for _ in range(self.count)]
        dist.all_gather(parts, mine)
        table = torch.stack(parts).cpu()
        differs = table != table[0]
        if not differs.any():
            return
        ranks = [r for r in range(self.count) if differs[r].any()]
        names = [name for k, name in enumerate(named) if differs[:, k].any()]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise ReplicaMismatchError(
            f"round {rnd}: the replica of process {', '.join(map(str, ranks))} differs from "
            f"process 0's in {shown} (checksums of the parameters and optimizer state, "
            "federation.checksum_every); the processes no longer hold the same model"
        )


def start_processes(device: str) -> Processes:
    """This process's place in the run, from accelerate's PartialState (created once per
    process): under `accelerate launch` / torchrun a process group of every launched process,
    gloo on CPUs and NCCL on GPUs; alone, one process. `device`: auto is what accelerate picks
    (a GPU per process when CUDA is there, else the CPU); cpu forces CPU processes; cuda:N
    names one GPU and so one process."""
    from accelerate import PartialState

    cuda = torch.cuda.is_available()
    if device.startswith("cuda") and not cuda:
        raise ConfigError("device", device, "cpu or auto: this machine has no CUDA device")
    state = PartialState(cpu=device == "cpu" or not cuda, timeout=COLLECTIVE_TIMEOUT)
    if state.num_processes == 1:
        # accelerate's pick for one process, made here: the state is created once per process
        # and keeps its first `cpu` flag, while one process may run several jobs (tests, sweeps)
        chosen = torch.device(("cuda" if cuda else "cpu") if device == "auto" else device)
        return Processes(device=chosen)
    if device.startswith("cuda:"):
        raise ConfigError(
            "device",
            device,
            f"auto or cuda with {state.num_processes} processes (each process takes the GPU "
            "of its local rank)",
        )
    chosen = state.device
    if chosen.type == "cpu":  # accelerate says cpu:0 in a process group; it is the one CPU
        chosen = torch.device("cpu")
    return Processes(state.process_index, state.num_processes, chosen)
