"""Learning rate as a function of the round, known to every party without communication."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """`constant`: lr every round; `cosine`: lr * (1 + cos(pi * round / rounds)) / 2."""

    lr: float
    kind: str = "constant"
    rounds: int = 1

    def at(self, rnd: int) -> float:
        if self.kind == "constant":
            return self.lr
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(rnd, self.rounds) / self.rounds))
