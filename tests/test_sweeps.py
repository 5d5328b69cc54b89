"""A `-m` sweep as users run it (real subprocesses, real files, offline wandb): its runs share a
wandb group, its table is written and printed when it ends, and hiso-plot draws the sweep."""

from __future__ import annotations

from pathlib import Path

from test_cli import hiso_run

from hiso.sweep_plot import main as plot
from hiso.tracking.wandb_reader import read_records

SWEEP = (
    "-m",
    "+experiment=digits",
    "federation.rounds=2",
    "logger.plot=false",
    "hydra.sweep.subdir=${hydra.job.num}",
)


def test_a_sweep_is_grouped_tabled_and_plotted(tmp_path: Path) -> None:
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
    table = (sweep / "sweep.md").read_text()
    assert table in done.stdout and (sweep / "sweep.csv").is_file()  # printed at the end
    assert "| 0 | 0 | finished | 2 |" in table and "| 1 | 1 | finished | 2 |" in table
    assert "## Over seeds" in table and "| 0, 1 |" in table
    # each job's console lines name it (parallel jobs share one console)
    lines = [line for line in done.stderr.splitlines() if " round 2/2 " in f" {line} "]
    assert sorted(line.split()[0] for line in lines) == ["[0]", "[1]"], done.stderr[-2000:]
    plot([str(sweep), "-o", str(tmp_path / "sweep.png")])
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
