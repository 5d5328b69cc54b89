"""A zeroth-order radius or rate too small for float32 weights is refused before the run: the
bounds of hiso/optim/resolution.py, checked against what float32 arithmetic does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hiso import cli
from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.optim.resolution import EPS, LOSS_CHANGE, WEIGHT, lr_bound, mu_bound
from hiso.schema import ConfigError
from hiso.tasks import build_task
from hiso.tracking.checkpoint import read_checkpoint, write_checkpoint

CPU = torch.device("cpu")

DIGITS = ("+experiment=digits", "logger=none")


def changed(x: torch.Tensor, step: torch.Tensor) -> float:
    """The fraction of float32 weights `x` that x + step moves."""
    return (x + step != x).float().mean().item()


def test_the_radius_bound_is_where_perturbations_start_to_move_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    x = 1 + torch.rand(100_000, generator=generator)  # float32 weights of magnitude 1 to 2
    z = torch.randn(100_000, generator=generator)
    assert mu_bound() == EPS
    assert changed(x, mu_bound() * z) > 0.5
    assert changed(x, mu_bound() / 8 * z) < 0.001
    assert changed(x, 1e-12 * z) == 0.0  # the mu: every perturbed model is x itself


def test_the_rate_bound_is_where_the_largest_step_stops_moving_weights() -> None:
    cfg = compose_config([*DIGITS, "algo=decomfl", "optim.momentum=0"])
    generator = torch.Generator().manual_seed(0)
    x = WEIGHT * (1 + torch.rand(100_000, generator=generator))
    z = torch.randn(100_000, generator=generator).clamp(-1, 1)  # directions of magnitude <= 1
    largest_scalar = LOSS_CHANGE / cfg.algo.mu
    bound = lr_bound(cfg, curvature=False)
    assert changed(x, bound * largest_scalar * z) == 0.0
    assert changed(x, 8 * bound * largest_scalar * z) > 0.1
    # HiSo's curvature floor and momentum lengthen a step: the bound falls with them
    assert lr_bound(cfg, curvature=True) == pytest.approx(bound * cfg.algo.curvature_floor**0.5)
    with_momentum = compose_config([*DIGITS, "algo=decomfl", "optim.momentum=0.9"])
    assert lr_bound(with_momentum, curvature=False) == pytest.approx(bound / 10)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("algo.mu=1e-12",), r"algo\.mu=1e-12 is not allowed: a number >= 1\.19e-07"),
        (("algo=decomfl", "optim.lr=1e-20"), r"optim\.lr=1e-20 .* >= 2\.98e-15 with algo\.mu"),
        (("algo=fedzo", "algo.mu=1e-9"), r"algo\.mu=1e-09"),
    ],
)
def test_vanishing_settings_are_refused(args: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        compose_config([*DIGITS, *args])


def test_working_and_first_order_settings_pass() -> None:
    compose_config([*DIGITS, "algo=hiso", "optim.lr=1e-12"])  # HiSo's bound is far lower
    compose_config([*DIGITS, "algo=fedavg", "algo.mu=1e-12", "optim.lr=1e-20"])  # mu unused


def test_a_run_whose_scalars_stay_zero_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's mu=1e-12, as a config that skipped validation (e.g. an old run's) runs it:
    every perturbed model is the model itself, so every scalar is zero; after an evaluation
    interval (2 rounds) one warning, on the console and in the summary; a working mu none."""
    args = [*DIGITS, "logger.console=true", "federation.rounds=4", "federation.eval_every=2"]
    args += ["dataset.max_test=40", "dataset.validation_size=40", "checkpoint.keep=0"]
    summary = cli.run(compose_config([*args, "algo.mu=1e-12"], validated=False), tmp_path / "a")
    (warning,) = summary["warnings"]
    assert warning.startswith("warning: every scalar of rounds 1-2 was zero") and "1e-12" in warning
    assert capsys.readouterr().err.count("every scalar of rounds") == 1
    assert "warnings" not in cli.run(compose_config(args), tmp_path / "b")


def test_the_zero_scalar_count_survives_a_checkpoint(tmp_path: Path) -> None:
    """Stopped after 3 of 4 zero rounds (interval 4) and resumed from a file: the warning comes
    at round 4, as in the uninterrupted run (the count restarted at 0 would never reach 4)."""
    args = ["algo.mu=1e-12", "federation.rounds=4", "federation.eval_every=4"]
    args += ["dataset.max_test=40", "dataset.validation_size=40"]
    cfg = compose_config([*DIGITS, *args], validated=False)
    first = Simulation(cfg, *_model_and_task(cfg))
    first.run(lambda record: None, stop=lambda: first.round == 3)
    assert first.health.zero_in_a_row == 3 and not first.health.warnings
    write_checkpoint(tmp_path / "c.ckpt", first.state_dict())
    second = Simulation(cfg, *_model_and_task(cfg))
    second.load_state_dict(read_checkpoint(tmp_path / "c.ckpt"))
    second.run(lambda record: None)
    (warning,) = second.health.warnings
    assert warning.startswith("warning: every scalar of rounds 1-4 was zero")


def _model_and_task(cfg):
    model, tokenizer = build_model(cfg.model, CPU, cfg.seed)
    return model, build_task(cfg, tokenizer), CPU
