"""Composing real hiso-run configs in tests (the same Hydra config the CLI uses), and loading
the scripts under scripts/ as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
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
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def scripts_on_path() -> None:
    """scripts/ first on the import path, as for a script run from there."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as a module, importing the scripts beside it as when run."""
    scripts_on_path()
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def import_script_module(name: str) -> ModuleType:
    """A module of a package under scripts/ (benchmark.timing: scripts/benchmark/timing.py),
    imported as the scripts import it, so that it is the one they use."""
    scripts_on_path()
    return importlib.import_module(name)


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
