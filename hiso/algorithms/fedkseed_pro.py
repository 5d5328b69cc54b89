"""FedKSeed-Pro (Qin et al., ICML 2024, arXiv 2312.06353, Sec. 3.3): FedKSeed whose local steps
sample the candidate seeds with probabilities from each seed's history of scalars, so that
directions whose scalars run large are drawn more often.

The rule follows the authors' code (FederatedScope, branch FedKSeed, server.py,
Server.calculate_probabilities, with main.py's defaults --grad_initial 0.0 and --bias_loss_clip
1000): each seed's history starts as [0.0] and gains every scalar a client uploads for it; its
importance is the mean over its history of |clip(g, -1000, 1000)|; the importances are min-max
normalised, (v - min) / (max + 1e-10 - min), and the probabilities are their softmax. The server
computes them at the start of each round from the rounds before and sends them in the SeedPool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiso.algorithms.base import Workspace, register
from hiso.algorithms.fedkseed import FedKSeed
from hiso.protocol import SeedReport

# |g| above this counts as this in a seed's history (main.py: --bias_loss_clip)
HISTORY_CLIP = 1000.0
# the entry every seed's history starts with (main.py: --grad_initial)
INITIAL_SCALAR = 0.0


def seed_probabilities(abs_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Softmax of the min-max normalised mean |clipped scalar| of each seed's history, given the
    sums of |clipped scalar| and the history lengths (float64)."""
    importance = abs_sums / counts
    low = importance.min()
    normalised = (importance - low) / (importance.max() + 1e-10 - low)
    weights = np.exp(normalised - normalised.max())
    return weights / weights.sum()


@register
class FedKSeedPro(FedKSeed):
    name = "fedkseed-pro"

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        size = len(self.seeds)
        # per seed: sum of |clip(g)| over its history, and the history's length
        self.abs_sums = np.full(size, abs(INITIAL_SCALAR), dtype=np.float64)
        self.counts = np.ones(size, dtype=np.float64)

    def sampling_probabilities(self) -> np.ndarray:
        return seed_probabilities(self.abs_sums, self.counts)

    def commit(self, reports: Sequence[SeedReport]) -> None:
        super().commit(reports)
        for report in reports:
            clipped = np.minimum(np.abs(report.scalars.astype(np.float64)), HISTORY_CLIP)
            np.add.at(self.abs_sums, report.indices, clipped)
            np.add.at(self.counts, report.indices, 1.0)

    def state_dict(self) -> dict[str, Any]:
        history = {"abs_sums": self.abs_sums.copy(), "counts": self.counts.copy()}
        return super().state_dict() | {k: torch.from_numpy(v) for k, v in history.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.abs_sums[:] = torch.as_tensor(state["abs_sums"], dtype=torch.float64).numpy()
        self.counts[:] = torch.as_tensor(state["counts"], dtype=torch.float64).numpy()

    def replica_tensors(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        history = {
            "seed history |scalar| sums": torch.from_numpy(self.abs_sums),
            "seed history lengths": torch.from_numpy(self.counts),
        }
        return super().replica_tensors(names) | history
