"""MeZO (Malladi et al. 2023): the papers' centralised reference, DeComFL with one client holding
all the training data (the algo preset sets central differences and P = 1)."""

from __future__ import annotations

from typing import Any

from hiso.algorithms.base import register
from hiso.algorithms.scalar import ScalarOnly
from hiso.schema import ConfigError


@register
class MeZO(ScalarOnly):
    name = "mezo"

    @classmethod
    def check(cls, cfg: Any) -> None:
        super().check(cfg)
        if cfg.federation.num_clients != 1:
            raise ConfigError(
                "federation.num_clients",
                cfg.federation.num_clients,
                "1 with algo=mezo (the centralised reference: one client holds all the data)",
            )
