"""The algorithm interface: what every algorithm of the algo group is to the round loop, and the
registry the group's `algo.name` selects a component from.

A component owns everything algorithm-specific: what a sampled client computes from its batches
(`client_update`), what crosses the wire and how the server aggregates it, how every party applies
a round's outcome, the optimizer state it carries for checkpoints and replicas, and what it adds to
an evaluation row. Its capabilities are properties (`uses_directions`), and the checks a config
needs for it are its own (`check`): nothing outside an algorithm's module tests its name.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from hiso.federation.processes import Processes
from hiso.federation.wire import Wire
from hiso.optim.schedule import LRSchedule
from hiso.schema import ConfigError, RunConfig

if TYPE_CHECKING:  # the forwards import the tasks, which import transformers: not for validation
    from hiso.federation.forwards import Forwards

# a client's batches: per sampled client, one list of example indices per local step
Batches = list[list[list[int]]]


@dataclass
class Workspace:
    """What the simulator lends a component: the one model (its trainable parameters, their float32
    storage `master` and a scratch copy `work`), the forwards, the wire and the process group."""

    cfg: RunConfig
    model: nn.Module
    params: list[nn.Parameter]
    master: list[torch.Tensor]
    work: list[torch.Tensor]
    device: torch.device
    forwards: Forwards
    wire: Wire
    processes: Processes

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.forwards.autocast()

    def lr_schedule(self) -> LRSchedule:
        return lr_schedule(self.cfg)

    def scratch(self) -> list[torch.Tensor]:
        return [torch.empty_like(x) for x in self.master]


def lr_schedule(cfg: RunConfig) -> LRSchedule:
    o = cfg.optim
    return LRSchedule(o.lr, o.lr_schedule, max(cfg.federation.rounds, 1))


class Algorithm(ABC):
    """One algorithm of the algo group, built once per run over the simulator's workspace."""

    # the algo group's algo.name that selects this component
    name: ClassVar[str]
    # whether clients draw seeded directions (zeroth-order): the direction cache applies
    uses_directions: ClassVar[bool] = True
    # whether those directions are scaled by a curvature, H^-1/2 u (HiSo): a step can be up to
    # 1 / sqrt(algo.curvature_floor) times as long (hiso/optim/resolution.py)
    curvature_scaled: ClassVar[bool] = False
    # whether a round's outcome is a few bytes every party applies (seeds and scalars): the run
    # records them (`trajectory_entry`) and any round's model is rebuilt from the starting model
    # by applying them again (`replay_round`), so full checkpoints are optional
    replayable: ClassVar[bool] = False

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        self.space = space
        # whether the last round's scalars were all zero (a zeroth-order round that measured no
        # loss change and so stepped by nothing); False for what sends no scalars
        self.zero_scalars = False

    @classmethod
    def check(cls, cfg: Any) -> None:
        """Refuse, with a ConfigError, a composed config this algorithm cannot run (none by
        default)."""
        return None

    @abstractmethod
    def run_round(self, rnd: int, clients: Sequence[int], batches: Batches) -> float:
        """One round over the sampled clients (ids in order, their batches): messages go over
        the workspace's wire, the model moves in place. Returns the mean training loss at the
        round's starting model, or NaN when the round produced a non-finite value (and the model
        was left as it was)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def trajectory_entry(self) -> bytes:
        """What the last round applied, as `replay_round` takes it (empty: the round was skipped);
        only for a replayable component."""
        raise TypeError(f"algo={self.name}: its rounds are not replayable")

    def replay_round(self, rnd: int, clients: Sequence[int], entry: bytes) -> None:
        """Round `rnd` again from its `trajectory_entry`, without any forward: the same messages
        over the wire (the same bytes counted), the same update of the model and of the
        optimizer state; only for a replayable component."""
        raise TypeError(f"algo={self.name}: its rounds are not replayable")

    def replica_tensors(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Optimizer state every process's replica must hold bit for bit, by name."""
        return {}

    def evaluation_summary(self, rnd: int) -> dict[str, float]:
        """What this algorithm adds to an evaluation row at round `rnd` (e.g. curvature)."""
        return {}

    @property
    def cache_bytes(self) -> int:
        """Memory the direction cache holds."""
        return 0


REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make `cls` the component of algo.name == cls.name."""
    if cls.name in REGISTRY:
        raise ValueError(f"two components for algo.name={cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls


def algorithm_class(name: str) -> type[Algorithm]:
    """The registered component of algo.name `name`; ConfigError naming the registered ones."""
    if name not in REGISTRY:
        raise ConfigError("algo.name", name, "one of " + ", ".join(REGISTRY))
    return REGISTRY[name]
