"""The zeroth-order estimates on a quadratic with a known gradient: their mean over many seeds
approaches grad f (DeComFL) and H^{-1} grad f (HiSo with H held fixed)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiso.federation.protocol import RoundRecord
from hiso.optim.directions import balanced_shares
from hiso.optim.schedule import LRSchedule
from hiso.optim.zo import Curvature, ZeroOrderOptimizer, ZOSettings

DIM = 16
SEEDS = 3000
TOLERANCE = 0.08  # relative error of the mean; the estimator's own noise is about 0.03 here


class Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.x = nn.Parameter(torch.randn(DIM, generator=gen))
        self.scales = torch.linspace(0.5, 3.0, DIM)

    def forward(self) -> torch.Tensor:
        return 0.5 * (self.scales * self.x**2).sum()

    def gradient(self) -> torch.Tensor:
        return self.scales * self.x.detach()


def mean_estimate(settings: ZOSettings, curvature: torch.Tensor | None) -> torch.Tensor:
    """Mean over seeds of (1/P) sum_p g_p z_p, read off as the step apply_record takes at lr=1."""
    model = Quadratic()
    params = list(model.parameters())
    master = [p.data for p in params]
    optimizer = ZeroOrderOptimizer(settings, master)
    state = optimizer.init_state(master)
    if curvature is not None:
        assert state.curvature is not None
        state.curvature[0].copy_(curvature)
    work = [torch.empty_like(master[0])]
    total = torch.zeros(DIM, dtype=torch.float64)
    for seed in range(SEEDS):
        g, _ = optimizer.estimate(
            params, master, work, state, seed, lambda: np.array([float(model().detach())])
        )
        x = [master[0].clone()]
        optimizer.apply_record(x, state, RoundRecord(0, (seed,), g))
        total += (master[0] - x[0]).double()
    return (total / SEEDS).float()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_decomfl_estimate_is_unbiased_for_the_gradient() -> None:
    settings = ZOSettings(num_perturbations=4, mu=1e-3, lr=LRSchedule(1.0), central=True)
    estimate = mean_estimate(settings, None)
    assert relative_error(estimate, Quadratic().gradient()) < TOLERANCE


def test_hiso_estimate_approaches_the_newton_like_step() -> None:
    curvature = torch.linspace(0.25, 4.0, DIM)
    settings = ZOSettings(
        num_perturbations=4,
        mu=1e-3,
        lr=LRSchedule(1.0),
        central=False,
        curvature=Curvature(beta=1.0, eps=0.0),
    )
    estimate = mean_estimate(settings, curvature)
    grad = Quadratic().gradient()
    assert relative_error(estimate, grad / curvature) < TOLERANCE
    assert relative_error(estimate, grad) > 3 * TOLERANCE  # distinguishable from plain ZO-SGD


def test_balanced_shares_split_every_parameter_once_and_evenly() -> None:
    sizes = [100, 7, 60, 40, 3, 1, 50]
    shares = balanced_shares(sizes, 2)
    assert sorted(i for s in shares for i in s) == list(range(len(sizes)))
    loads = [sum(sizes[i] for i in s) for s in shares]
    assert max(loads) - min(loads) <= max(sizes[i] for i in range(len(sizes)) if i != 0)
    assert balanced_shares(sizes, 1) == [list(range(len(sizes)))]
    assert len(balanced_shares([5, 5], 8)) == 2
