"""A `-m` sweep as users run it (real subprocesses, real files, offline wandb)."""

from __future__ import annotations

from pathlib import Path

from test_cli import hiso_run

from hiso.tracking.wandb_reader import read_records

SWEEP = (
    "-m",
    "+experiment=digits",
    "federation.rounds=2",
    "logger.plot=false",
    "hydra.sweep.subdir=${hydra.job.num}",
)


def test_a_sweeps_runs_share_a_wandb_group_named_by_the_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = hiso_run(*SWEEP, "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    groups = [
        r.run.run_group
        for job in ("0", "1")
        for r in read_records(sweep / job / "wandb")
        if r.HasField("run")
    ]
    assert groups == [str(sweep)] * 2
