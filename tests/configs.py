"""Composing real hiso-run configs in tests (the same Hydra config the CLI uses)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.tasks import build_task

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
# the devices a test of the simulator's guarantees runs on: parametrize(..., DEVICES); the CUDA
# case is marked cuda and skipped without a CUDA device (tests/conftest.py)
DEVICES = (pytest.param(CPU, id="cpu"), pytest.param(CUDA, id="cuda", marks=pytest.mark.cuda))


def digits_config(*overrides: str) -> Any:
    """The digits experiment shrunk to seconds: few rounds, small batches, no logging."""
    base = (
        "+experiment=digits",
        "logger=none",
        "federation.rounds=12",
        "federation.eval_every=0",
        "optim.batch_size=8",
        "algo.num_perturbations=3",
        "federation.local_steps=1",
    )
    return compose_config([*base, *overrides])


def digits_simulation(*overrides: str, device: torch.device = CPU) -> Simulation:
    cfg = digits_config(*overrides)
    model, tokenizer = build_model(cfg.model, device, cfg.seed)
    return Simulation(cfg, model, build_task(cfg, tokenizer), device)
