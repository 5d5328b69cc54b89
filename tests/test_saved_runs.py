"""Runs saved by an earlier version of hiso-run continue: a checkpoint's config and overrides
in an older shape are read in today's shape, and the run goes on exactly."""

from __future__ import annotations

from pathlib import Path

from test_cli import hiso_run

from hiso.cli import run
from hiso.config import compose_config
from hiso.resume import prepare
from hiso.tracking.checkpoint import Checkpoints, read_checkpoint, write_checkpoint

from resume_runs import DIGITS, assert_same_run, reference


def test_a_checkpoint_from_before_the_wandb_group_resumes_exactly(tmp_path: Path) -> None:
    """`logger.wandb` was the mode's string and `logger.project` the project (the runs of the
    committed digits rerun were saved so): such a checkpoint resumes with the same trajectory."""
    run_dir = tmp_path / "run"
    run(compose_config([*DIGITS, "federation.rounds=60"]), run_dir)
    # resume from round 40 (the end-of-run checkpoint and row of round 60 are not mid-run ones)
    (newest, _), (_, path), _ = Checkpoints(run_dir / "checkpoints", 3).files()
    assert newest == 60
    (run_dir / "checkpoints" / "round-000060.ckpt").unlink()
    (run_dir / "trajectory.bin").unlink()  # such runs were saved before trajectories
    state = read_checkpoint(path)
    logger = {k: v for k, v in state["config"]["logger"].items() if k != "wandb"}
    state["config"]["logger"] = logger | {"wandb": "disabled", "project": "old-project"}
    state["overrides"] = [*state["overrides"], "logger.wandb=disabled"]
    write_checkpoint(path, state)

    resumed = [f"resume={run_dir}", "federation.rounds=100"]
    start = prepare(compose_config(resumed), run_dir, resumed)
    assert start.cfg.logger.wandb.mode == "disabled"
    assert start.cfg.logger.wandb.project == "old-project"
    assert start.overrides[-2:] == ["logger.wandb.mode=disabled", "federation.rounds=100"]

    result = hiso_run(*resumed, cwd=tmp_path)  # the command line's path, end to end
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, reference(tmp_path, "federation.rounds=100"))
