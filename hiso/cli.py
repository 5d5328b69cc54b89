"""`hiso-run`: compose the config, check every input, build the model and task, run, summarise.

Exit codes: 0 done, 1 a failure during a run, 2 an input error (reported in one message before
anything heavy loads)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hiso.config import ConfigError, SetupError, register_configs, validate
from hiso.federation.simulator import NonFiniteLossError
from hiso.preflight import check_command, check_logger, exit_input_error, read_checked_data

register_configs()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", name, "cpu or auto: this machine has no CUDA device")
    return torch.device(name)


def run(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Build everything from a validated config and run it, writing outputs under run_dir."""
    from hiso.federation.simulator import Simulation
    from hiso.models import build_model
    from hiso.tasks import build_task
    from hiso.tracking import Tracker

    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    data = read_checked_data(cfg)
    model, tokenizer = build_model(cfg.model, device, cfg.seed)
    task = build_task(cfg, tokenizer, data)
    simulation = Simulation(cfg, model, task, device, run_dir / "best-model.pt")
    name = f"{cfg.algo.name}-{cfg.model.name}-{cfg.dataset.name}-s{cfg.seed}"
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    tracker = Tracker(run_dir, cfg.logger, container, cfg.federation.rounds, run_name=name)
    try:
        extras = simulation.run(tracker.log)
    except BaseException as error:
        tracker.close_on_error(error)
        raise
    extras = {
        **extras,
        "algorithm": cfg.algo.name,
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "device": str(device),
    }
    return tracker.finish(extras, cfg.federation.target_accuracy)


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    keys = (
        "initial_test_accuracy",
        "final_test_accuracy",
        "best_val_accuracy",
        "best_round",
        "test_accuracy_at_best",
        "rounds_to_target",
        "seconds_per_round",
    )
    shown = ", ".join(f"{k}={summary.get(k)}" for k in keys)
    skipped = summary.get("skipped_rounds")
    warning = f"; {skipped} rounds skipped (NaN/inf, nan_policy=skip)" if skipped else ""
    print(
        f"[hiso-run] {shown}; total_bytes={summary.get('total_bytes')}{warning}; "
        f"outputs in {run_dir}"
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate(cfg)
        check_logger(cfg.logger)
        summary = run(cfg, run_dir)
    except SetupError as error:
        exit_input_error(str(error))
    except NonFiniteLossError as error:
        print(f"hiso-run: stopped: {error}; metrics so far are in {run_dir}", file=sys.stderr)
        sys.exit(1)
    _print_summary(summary, run_dir)
    return summary.get("best_val_accuracy")


def main() -> None:
    """The console script: every job's inputs are checked before Hydra runs the first one."""
    check_command()
    _main()
