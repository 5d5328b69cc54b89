"""Server optimisers of the full-update family: how the server moves x by the round's mean client
change delta = mean(client models) - x.

FedAvg takes the plain step x <- x + delta (the mean of the client models). FedAdam, FedYogi and
FedAdagrad (Reddi et al., "Adaptive Federated Optimization") keep first and second moments m, v
and step x <- x + lr m / sqrt(v + tau), as the DeComFL authors' code does: m and v start at zero,
no bias correction, tau inside the square root.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from hiso.optim.schedule import LRSchedule

ADAPTIVE_RULES = ("adam", "yogi", "adagrad")


class ServerOptimizer(Protocol):
    def step(self, x: Sequence[torch.Tensor], delta: Sequence[torch.Tensor], rnd: int) -> None:
        """Move x in place by the round's mean client change; `delta` may be overwritten."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MeanStep:
    """FedAvg's server: x <- x + delta, the mean of the client models; no state."""

    def step(self, x: Sequence[torch.Tensor], delta: Sequence[torch.Tensor], rnd: int) -> None:
        for p, d in zip(x, delta, strict=True):
            p.add_(d)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"the mean step has no state, got keys {sorted(state)}")


class AdaptiveStep:
    """m <- b1 m + (1 - b1) delta;
    v <- b2 v + (1 - b2) delta^2 (adam) | v - (1 - b2) delta^2 sign(v - delta^2) (yogi)
         | v + delta^2 (adagrad);
    x <- x + lr m / sqrt(v + tau). m and v are float32 like x and start at zero."""

    def __init__(
        self,
        rule: str,
        lr: LRSchedule,
        x: Sequence[torch.Tensor],
        beta1: float = 0.9,
        beta2: float = 0.999,
        tau: float = 1e-8,
    ) -> None:
        if rule not in ADAPTIVE_RULES:
            raise ValueError(f"rule {rule!r} is not one of {', '.join(ADAPTIVE_RULES)}")
        self.rule, self.lr = rule, lr
        self.beta1, self.beta2, self.tau = beta1, beta2, tau
        self.m = [torch.zeros_like(p) for p in x]
        self.v = [torch.zeros_like(p) for p in x]

    def step(self, x: Sequence[torch.Tensor], delta: Sequence[torch.Tensor], rnd: int) -> None:
        lr, b1, b2 = self.lr.at(rnd), self.beta1, self.beta2
        for p, d, m, v in zip(x, delta, self.m, self.v, strict=True):
            m.mul_(b1).add_(d, alpha=1 - b1)
            square = d.mul_(d)  # delta is not needed past m: its storage takes delta^2
            if self.rule == "adam":
                v.mul_(b2).add_(square, alpha=1 - b2)
            elif self.rule == "yogi":
                v.addcmul_(square, torch.sign(v - square), value=-(1 - b2))
            else:
                v.add_(square)
            denominator = torch.add(v, self.tau, out=square).sqrt_()
            p.addcdiv_(m, denominator, value=lr)

    def state_dict(self) -> dict[str, Any]:
        return {"m": [t.clone() for t in self.m], "v": [t.clone() for t in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("m", "v"):
            mine, theirs = getattr(self, name), state[name]
            if [t.shape for t in mine] != [t.shape for t in theirs]:
                raise ValueError(f"server optimiser state {name!r} does not match the model")
            for t, saved in zip(mine, theirs, strict=True):
                t.copy_(saved)
