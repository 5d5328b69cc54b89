"""Sweeps on Hydra's launchers: joblib's workers share the cores, submitit_local runs a real
sweep, the Slurm preset composes and is refused where Slurm's commands are missing, and
scripts/reproduce.py hands its launcher to the multirun."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
from test_cli import hiso_run

from hiso.reproduce.sweep import Launcher, multirun_command, search_runs
from hiso.reproduce.tables import TABLES

DIGITS_SWEEP = (
    "-m",
    "+experiment=digits",
    "logger=none",
    "federation.rounds=3",
    "federation.eval_every=0",
    "seed=0,1",
)


def summaries(sweep: Path) -> list[dict]:
    found = sorted(sweep.glob("*/summary.json"))
    return [json.loads(p.read_text()) for p in found]


def test_joblib_workers_get_their_share_of_the_cores(tmp_path: Path) -> None:
    """threads=null: torch's default, which joblib caps at cores // n_jobs in its workers (the
    digits experiment sets threads=1, so it is unset here)."""
    sweep = tmp_path / "sweep"
    result = hiso_run(
        *DIGITS_SWEEP,
        "threads=null",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = summaries(sweep)
    assert len(found) == 2
    assert {s["threads"] for s in found} == {max(1, joblib.cpu_count() // 2)}
    assert {s["status"] for s in found} == {"finished"}


def test_submitit_local_runs_a_sweep_of_two_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = hiso_run(
        *DIGITS_SWEEP,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = summaries(sweep)
    assert [s["status"] for s in found] == ["finished", "finished"]
    assert [s["round_reached"] for s in found] == [3, 3]
    # each job ran in its own submitit process, with its own log
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2


def test_slurm_preset_sets_partition_time_and_gpus(tmp_path: Path) -> None:
    result = hiso_run(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=600",
        "--cfg",
        "hydra",
        "-p",
        "hydra.launcher",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = set(result.stdout.splitlines())
    assert {"partition: gpu", "timeout_min: 600", "gpus_per_node: 1", "cpus_per_task: 8"} <= lines
    assert "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in (
        lines
    )


def test_slurm_sweep_without_slurm_is_one_clear_error(tmp_path: Path) -> None:
    result = hiso_run(
        *DIGITS_SWEEP,
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        env={"PATH": str(Path(sys.executable).parent)},  # the venv's commands only: no srun
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hiso-run: hydra/launcher: the Slurm launcher submits with sbatch and srun, which this "
        "machine does not have; launch the sweep from a Slurm login node (locally: "
        "hydra/launcher=joblib or submitit_local)"
    ]
    assert not (tmp_path / "sweep").exists()


def test_reproduce_hands_the_launcher_and_its_bound_to_the_multirun(tmp_path: Path) -> None:
    table = TABLES["smoke"]
    runs = search_runs(table, table.cells)
    for name, bound in (
        ("slurm", "hydra.launcher.array_parallelism=4"),
        ("submitit_slurm", "hydra.launcher.array_parallelism=4"),
        ("joblib", "hydra.launcher.n_jobs=4"),
    ):
        command = multirun_command(table, runs, 20, tmp_path, Launcher(name, 4))
        assert f"hydra/launcher={name}" in command and bound in command
    local = multirun_command(table, runs, 20, tmp_path, Launcher("submitit_local", None))
    assert "hydra/launcher=submitit_local" in local
    assert not any(a.startswith("hydra.launcher.") for a in local)


def test_a_search_stage_scores_no_test_split_and_a_final_stage_does(tmp_path: Path) -> None:
    table = TABLES["smoke"]
    runs = search_runs(table, table.cells)
    search = multirun_command(table, runs, 20, tmp_path, Launcher("joblib", 2), False)
    final = multirun_command(table, runs, 20, tmp_path, Launcher("joblib", 2))
    assert "federation.score_test=false" in search
    assert not any("score_test" in a for a in final)
