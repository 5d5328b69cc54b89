"""FedAdam, FedYogi and FedAdagrad (Reddi et al., "Adaptive Federated Optimization"): FedAvg's
clients, and an adaptive server step over the mean client change (hiso/optim/server.py)."""

from __future__ import annotations

from typing import ClassVar

from hiso.algorithms.base import register
from hiso.algorithms.fedavg import FedAvg
from hiso.optim.schedule import LRSchedule
from hiso.optim.server import AdaptiveStep, ServerOptimizer


class AdaptiveServer(FedAvg):
    # the second-moment rule of hiso/optim/server.py's AdaptiveStep
    rule: ClassVar[str]

    def make_server_optimizer(self) -> ServerOptimizer:
        cfg = self.space.cfg
        a, o = cfg.algo, cfg.optim
        lr = LRSchedule(
            o.lr if a.server_lr is None else a.server_lr,
            o.lr_schedule,
            max(cfg.federation.rounds, 1),
        )
        return AdaptiveStep(
            self.rule, lr, self.space.master, a.server_beta1, a.server_beta2, a.server_tau
        )


@register
class FedAdam(AdaptiveServer):
    name, rule = "fedadam", "adam"


@register
class FedYogi(AdaptiveServer):
    name, rule = "fedyogi", "yogi"


@register
class FedAdagrad(AdaptiveServer):
    name, rule = "fedadagrad", "adagrad"
