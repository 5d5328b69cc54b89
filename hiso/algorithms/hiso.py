"""HiSo: DeComFL along directions z = H^{-1/2} u, with a diagonal curvature H (float32, H_0 = 1)
that every party updates from the broadcast record (algo.curvature_scope=global: one number, the
ablation). Each evaluation row carries H's summary and the effective rate lr * mean(1/H)."""

from __future__ import annotations

import torch

from hiso.algorithms.base import Workspace, register
from hiso.algorithms.scalar import ScalarOnly, zo_settings
from hiso.optim.curvature import CurvatureProbe, effective_lr
from hiso.optim.zo import Curvature, ZOSettings
from hiso.schema import RunConfig


@register
class HiSo(ScalarOnly):
    name = "hiso"
    curvature_scaled = True

    def __init__(self, space: Workspace, cache_directions: bool) -> None:
        super().__init__(space, cache_directions)
        assert self.state.curvature is not None
        shapes = [h.shape for h in self.state.curvature]
        self.probe = CurvatureProbe(shapes, space.device, space.cfg.seed)

    @classmethod
    def settings(
        cls, cfg: RunConfig, device: torch.device | None = None, cache_directions: bool = False
    ) -> ZOSettings:
        a = cfg.algo
        curvature = Curvature(
            beta=a.beta,
            eps=a.eps,
            floor=a.curvature_floor,
            every_step=a.curvature_steps == "every",
            scope=a.curvature_scope,
        )
        return zo_settings(cfg, device, cache_directions, curvature)

    def evaluation_summary(self, rnd: int) -> dict[str, float]:
        """H's summary and the effective rate at the round's lr (that of the next step)."""
        assert self.state.curvature is not None
        out = self.probe.summary(self.state.curvature, self.space.cfg.algo.curvature_floor)
        lr = self.zo.settings.lr.at(rnd)
        return out | {"effective_lr": effective_lr(lr, out["curvature_inverse_mean"])}
