"""HiSo's effective rate is lr * mean(1/H) (../shared/SPEC.md section 3): its scalars shrink by
H^-1/2 as its directions do, so with H held at a constant h, HiSo(lr, mu) is DeComFL(lr / h,
mu / sqrt(h)) up to float rounding, and DeComFL at lr / sqrt(h) (the rate once stated) is not."""

from __future__ import annotations

import math

import pytest
import torch

from hiso.optim.curvature import effective_lr

from configs import digits_simulation

ROUNDS = 6
# digits, K = 2 local steps, P = 3 central differences, momentum 0.9: every part of a round
COMMON = (
    "federation.local_steps=2",
    "algo.difference=central",
    "optim.momentum=0.9",
    "optim.lr_schedule=constant",
)
LR, MU = 2e-3, 1e-3


def displacement(algo: str, lr: float, mu: float, h: float | None = None) -> torch.Tensor:
    """x_R - x_0 after ROUNDS rounds, flattened; with h, HiSo's H starts at h and beta = 1 keeps
    it there."""
    extra = ("algo.beta=1.0",) if algo == "hiso" else ()
    sim = digits_simulation(f"algo={algo}", *COMMON, *extra, f"optim.lr={lr!r}", f"algo.mu={mu!r}")
    start = torch.cat([t.detach().reshape(-1).clone() for t in sim.replica_tensors().values()])
    if h is not None:
        curvature = [t for name, t in sim.replica_tensors().items() if name.startswith("curv")]
        assert curvature, "HiSo's H is not among the replica tensors"
        for t in curvature:
            t.fill_(h)
    for rnd in range(ROUNDS):
        sim.run_round(rnd)
    params = [t for name, t in sim.replica_tensors().items() if " of " not in name]
    end = torch.cat([t.detach().reshape(-1) for t in params])
    return (end - start[: end.numel()]).double()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("h", [3.5, 0.5])
def test_hiso_with_h_fixed_is_decomfl_at_lr_over_h(h: float) -> None:
    hiso = displacement("hiso", LR, MU, h)
    assert float(hiso.norm()) > 0
    same = displacement("decomfl", LR / h, MU / math.sqrt(h))
    assert relative_error(hiso, same) < 2e-4  # measured 4.5e-5 (h 3.5), 3.5e-5 (h 0.5)
    # the rate once stated, lr * sqrt(mean 1/H) = lr / sqrt(h): 46% and 41% off
    old = displacement("decomfl", LR / math.sqrt(h), MU / math.sqrt(h))
    assert relative_error(hiso, old) > 0.2


def test_effective_lr_is_lr_times_mean_inverse_h() -> None:
    assert effective_lr(LR, 1 / 3.5) == pytest.approx(LR / 3.5)
