"""The quick path: `hiso-run --version` and `--help` answer without torch, `hiso-run eval` scores
without training, `+experiment=debug` runs small, `federation.patience` stops a run early."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from test_cli import HISO_RUN, hiso_run

from hiso import cli
from hiso.command_line import expand_eval
from hiso.config import compose_config
from hiso.tracking.patience import Patience
from hiso.tracking.records import read_jsonl

ASKS = "import sys; sys.argv = {argv!r}; from hiso.cli import {entry} as m; m()"
NO_TORCH = "; print('torch' in sys.modules, file=sys.stderr)"


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env or None
    )


def test_version_and_help_load_no_torch() -> None:
    for argv in (
        ["hiso-run", "--version"],
        ["hiso-run", "--help"],
        ["hiso-run", "algo=mezo", "-h"],
    ):
        done = python(ASKS.format(argv=argv, entry="main") + NO_TORCH)
        assert done.returncode == 0 and done.stderr.strip() == "False", (argv, done.stderr)
    assert (
        subprocess.run([HISO_RUN, "--version"], capture_output=True, text=True, check=True).stdout
        == f"hiso-run {version('hiso-run')}\n"
    )


def test_help_is_hydras_help_page() -> None:
    """The fast help page equals the one Hydra's own --help prints (but for --version's line)."""
    hydras = python(ASKS.format(argv=["hiso-run", "algo=fedavg", "--help"], entry="_main")).stdout
    ours = python(ASKS.format(argv=["hiso-run", "algo=fedavg", "--help"], entry="main")).stdout
    assert "algo: decomfl, fedadagrad" in ours and "name: fedavg" in ours
    assert ours == hydras.replace("Show Hydra's version", "Show hiso-run's version")


def test_eval_scores_the_starting_model_and_trains_nothing(tmp_path: Path) -> None:
    assert expand_eval(["hiso-run", "eval", "federation.rounds=5", "x=1"])[1:] == [
        "checkpoint.keep=0",
        "logger.plot=false",
        expand_eval(["hiso-run", "eval"])[-1],  # the run directory, named eval
        "federation.rounds=5",
        "x=1",
    ]
    assert expand_eval(["hiso-run", "x=1"]) == ["hiso-run", "x=1"]
    done = hiso_run("eval", "+experiment=digits", "logger=none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*_eval_cnn_digits")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds"] == 0 and summary["final_test_accuracy"] is not None
    assert summary["final_val_accuracy"] is not None and summary["total_bytes"] == 0
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "curves.png").exists()
    assert not (run_dir / "trajectory.bin").exists()  # no round to record


def test_debug_runs_three_rounds_on_a_few_dozen_examples_without_checkpoints(
    tmp_path: Path,
) -> None:
    cfg = compose_config(["+experiment=debug", "model=cnn", "dataset=digits", "logger=none"])
    summary = cli.run(cfg, tmp_path)
    assert summary["rounds"] == 3 and summary["test_examples"] == 32
    assert summary["val_examples"] == 16 and not (tmp_path / "checkpoints").exists()


def test_patience_counts_evaluations_without_a_better_validation_accuracy() -> None:
    patience = Patience(2, [{"round": 0, "val_accuracy": 0.5}, {"round": 1}])
    for accuracy, exhausted in ((0.6, False), (0.6, False), (0.55, True), (0.7, False)):
        patience.observe({"val_accuracy": accuracy})
        assert patience.exhausted == exhausted
    assert not Patience(None, [{"val_accuracy": 0.5}] * 9).exhausted


def test_patience_stops_the_run_early_and_scores_its_models(tmp_path: Path) -> None:
    """A learning rate too small to move the accuracy: evaluations at rounds 0 (the best), 2, 4;
    with patience 2 the run ends after round 4 of 20."""
    overrides = ["+experiment=digits", "logger=none", "federation.rounds=20"]
    overrides += ["federation.eval_every=2", "federation.patience=2", "optim.lr=1e-12"]
    summary = cli.run(compose_config(overrides), tmp_path)
    assert summary["stopped_early_at"] == summary["round_reached"] == 4
    assert [r["round"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    assert summary["status"] == "finished" and summary["best_round"] == 0
    assert (
        summary["test_accuracy_at_best"] is not None and summary["final_test_accuracy"] is not None
    )


def test_console_scripts_point_at_the_commands() -> None:
    """Every console script of pyproject.toml names a function that exists; hiso-reproduce runs
    scripts/reproduce.py's command from the checkout."""
    import importlib
    import tomllib

    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"hiso-run", "hiso-run-export", "hiso-summarize", "hiso-plot", "hiso-reproduce"} <= set(
        scripts
    )
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    done = python(
        ASKS.format(argv=["hiso-reproduce", "--help"], entry="main").replace(
            "hiso.cli", "hiso.reproduce_command"
        )
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: hiso-reproduce"), done.stderr
