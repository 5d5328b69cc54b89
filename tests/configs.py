"""Composing real hiso-run configs in tests (the same Hydra config the CLI uses), and loading
the scripts under scripts/ as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.tasks import build_task

CPU = torch.device("cpu")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


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


def digits_simulation(*overrides: str) -> Simulation:
    cfg = digits_config(*overrides)
    model, tokenizer = build_model(cfg.model, CPU, cfg.seed)
    return Simulation(cfg, model, build_task(cfg, tokenizer), CPU)
