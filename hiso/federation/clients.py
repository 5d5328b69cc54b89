"""A simulated client: its shard and its position in its own shuffled data order, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hiso.seeding import numpy_generator


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
