"""Cheap summaries of HiSo's diagonal curvature H, to see how it evolves over rounds.

Quantiles come from a fixed sample of H's entries (drawn once, seeded), so a summary costs a
gather of SAMPLE values, not a sort of all d; the mean, the mean of 1/H and the fraction of
entries at the floor are exact (one pass each). HiSo's direction is z = H^{-1/2} u and its
scalars are directional derivatives along z, so they shrink by H^{-1/2} as well: E[dx] = -lr H^{-1}
grad f. With H held at h, HiSo(lr, mu) is DeComFL(lr / h, mu / sqrt(h)); the rate at which DeComFL
takes HiSo's mean step is `effective_lr` = lr * mean(1/H) (tests/test_effective_rate.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hiso.seeding import derive_seed, torch_generator

SAMPLE = 65_536
QUANTILES = (0.05, 0.5, 0.95)


def effective_lr(lr: float, inverse_mean: float) -> float:
    """HiSo's effective learning rate: lr * mean(1/H), the DeComFL rate with the same expected
    step (for the one-global-H ablation mean(1/H) is 1/H)."""
    return lr * inverse_mean


class CurvatureProbe:
    """Per-parameter entry indices, about SAMPLE in all, in proportion to each tensor's size."""

    def __init__(self, shapes: Sequence[torch.Size], device: torch.device, seed: int) -> None:
        sizes = [s.numel() for s in shapes]
        total = sum(sizes)
        gen = torch_generator(derive_seed(seed, "curvature-probe"))
        self.indices = [
            torch.randint(n, (max(1, n * SAMPLE // total),), generator=gen).to(device)
            for n in sizes
        ]

    def summary(self, curvature: Sequence[torch.Tensor], floor: float) -> dict[str, float]:
        """curvature_q05/q50/q95 (sampled); curvature_mean, curvature_inverse_mean and
        curvature_floor_fraction (exact)."""
        sample = torch.cat(
            [h.reshape(-1)[i] for h, i in zip(curvature, self.indices, strict=True)]
        ).double()
        values = torch.quantile(
            sample, torch.tensor(QUANTILES, dtype=torch.float64, device=sample.device)
        )
        total = sum(h.numel() for h in curvature)
        at_floor = sum(int((h <= floor).sum()) for h in curvature)
        mean = sum(float(h.sum(dtype=torch.float64)) for h in curvature) / total
        inverse = sum(float(h.reciprocal().sum(dtype=torch.float64)) for h in curvature) / total
        out = {
            f"curvature_q{round(q * 100):02d}": float(v)
            for q, v in zip(QUANTILES, values, strict=True)
        }
        return out | {
            "curvature_mean": mean,
            "curvature_inverse_mean": inverse,
            "curvature_floor_fraction": at_floor / total,
        }
