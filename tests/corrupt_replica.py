"""`hiso-run` with one replica corrupted on purpose, for tests/test_processes.py (never shipped):
launched like hiso.cli under accelerate, it makes process 1 nudge the first entry of its first
trainable parameter by one ulp just before round HISO_CORRUPT_ROUND, the smallest divergence a
replica can have. Everything else is the real CLI."""

from __future__ import annotations

import os

import torch

from hiso.cli import main
from hiso.federation.simulator import Simulation

CORRUPT_ROUND = int(os.environ["HISO_CORRUPT_ROUND"])
run_round = Simulation.run_round


def corrupted_run_round(self: Simulation, rnd: int) -> float:
    if rnd + 1 == CORRUPT_ROUND and self.processes.index == 1:
        entry = self.master[0].view(-1)[:1]
        entry.copy_(torch.nextafter(entry, entry + 1))
    return run_round(self, rnd)


Simulation.run_round = corrupted_run_round  # type: ignore[method-assign]
main()
