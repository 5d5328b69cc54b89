"""The real `hiso-run` end to end on digits, and bad configurations stopping before training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hiso.config import ConfigError, compose_config
from hiso.tracking import read_jsonl, read_wandb_offline_history

HISO_RUN = shutil.which("hiso-run", path=str(Path(sys.executable).parent))
FAST = ("+experiment=digits", "federation.rounds=20", "federation.eval_every=10")


def hiso_run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert HISO_RUN is not None, "the hiso-run console script is not installed in this venv"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_SILENT": "true",
        **(env or {}),
    }
    return subprocess.run(
        [HISO_RUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_end_to_end_writes_metrics_summary_plot_and_wandb(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = hiso_run(*FAST, "algo=hiso", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == list(range(21))
    assert all("val_accuracy" in rows[i] for i in (0, 10, 20))
    assert [r["round"] for r in rows if "test_accuracy" in r] == [0, 20]
    assert rows[20]["cumulative_bytes"] > 0 and rows[20]["train_loss"] > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_test_accuracy"] == rows[20]["test_accuracy"]
    assert summary["best_val_accuracy"] == max(rows[i]["val_accuracy"] for i in (0, 10, 20))
    assert summary["total_bytes"] == rows[20]["cumulative_bytes"]
    assert summary["algorithm"] == "hiso" and summary["peak_memory_bytes"] > 0
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = read_wandb_offline_history(run_dir / "wandb")
    assert history == rows
    assert "final_test_accuracy" in result.stdout


def test_help_config_printing_and_multirun(tmp_path: Path) -> None:
    algos = "algo: decomfl, fedadagrad, fedadam, fedavg, fedyogi, fedzo, hiso, mezo"
    assert algos in hiso_run("--help", cwd=tmp_path).stdout
    job = hiso_run("+experiment=digits", "algo=decomfl", "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0 and "name: decomfl" in job.stdout
    sweep = tmp_path / "sweep"
    result = hiso_run(
        "-m",
        "+experiment=digits",
        "federation.rounds=3",
        "logger=none",
        "algo=hiso,decomfl",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent.name for p in sweep.glob("*/metrics.jsonl"))
    assert len(runs) == 2
    assert runs[0].startswith("0_") and "algo=hiso" in runs[0]
    assert runs[1].startswith("1_") and "algo=decomfl" in runs[1]


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("algo.name=sgd", ("algo.name", "'sgd'", "hiso, decomfl, mezo, fedavg, fedadam")),
        ("federation.clients_per_round=9", ("federation.clients_per_round", "9", "from 1 to")),
        ("optim.lr=-0.1", ("optim.lr", "-0.1", "> 0")),
        ("algo.num_perturbations=0", ("algo.num_perturbations", "0", ">= 1")),
        ("algo.difference=backward", ("algo.difference", "backward", "forward, central")),
        ("federation.length_buckets=0", ("federation.length_buckets", "0", "auto, off")),
        ("federation.length_buckets=some", ("federation.length_buckets", "some", ">= 1")),
        ("algo.server_lr=0", ("algo.server_lr", "0", "> 0")),
        ("algo.server_beta1=1.0", ("algo.server_beta1", "1.0", "[0, 1)")),
        ("algo.server_beta2=-0.1", ("algo.server_beta2", "-0.1", "[0, 1)")),
        ("algo.server_tau=0", ("algo.server_tau", "0", "> 0")),
        ("model.lora.r=-1", ("model.lora.r", "-1", ">= 0")),
        ("model.lora.r=8", ("model.lora.r", "8", "cnn")),
    ],
)
def test_bad_values_are_named_before_anything_loads(override: str, names: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as error:
        compose_config([*FAST, override])
    for name in names:
        assert name in str(error.value)


def test_cli_rejects_bad_input_with_a_named_error_and_no_run(tmp_path: Path) -> None:
    cases = {
        ("algo=sgd",): ("algo/sgd", "decomfl", "fedavg", "hiso"),
        ("federation.num_clientz=3",): ("num_clientz",),
        ("optim.lr=-1",): ("optim.lr", "-1", "> 0"),
        ("optim.lr=fast",): ("optim.lr", "fast"),
    }
    for args, names in cases.items():
        result = hiso_run(*FAST, *args, f"hydra.run.dir={tmp_path / 'never'}", cwd=tmp_path)
        assert result.returncode == 2
        for name in names:
            assert name in result.stderr, (args, result.stderr[-2000:])
        assert not (tmp_path / "never" / "metrics.jsonl").exists()


def test_unreachable_hub_model_names_itself_and_the_local_route(tmp_path: Path) -> None:
    result = hiso_run("model=opt-125m", "dataset.max_test=8", "logger=none", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "facebook/opt-125m" in result.stderr and "model.path=<dir>" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_diverging_run_stops_with_a_message_and_keeps_its_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ("+experiment=digits", "optim.lr=1e30", "optim.momentum=0", "logger=none")
    result = hiso_run(*args, "federation.rounds=5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 1
    assert "NaN or infinite" in result.stderr and "Traceback" not in result.stderr
    assert read_jsonl(run_dir / "metrics.jsonl")[0]["round"] == 0


def test_access_tokens_appear_in_no_file_of_the_run(tmp_path: Path) -> None:
    """HF_TOKEN and WANDB_API_KEY come from the environment only: not in the saved config,
    .hydra/, metrics, summary, logs or the wandb run."""
    tokens = {"HF_TOKEN": "hf_" + os.urandom(12).hex(), "WANDB_API_KEY": os.urandom(20).hex()}
    run_dir = tmp_path / "run"
    result = hiso_run(
        "+experiment=digits",
        "federation.rounds=3",
        "federation.eval_every=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=tokens,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.relative_to(run_dir).parts[0] for p in files}
    assert {".hydra", "metrics.jsonl", "summary.json", "wandb", "cli.log"} <= names
    for token in tokens.values():
        assert token not in result.stdout + result.stderr
        for path in files:
            assert token.encode() not in path.read_bytes(), path


def test_skipped_rounds_are_counted_and_named_on_the_last_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ("+experiment=digits", "logger=none", "federation.local_steps=1", "optim.lr=1e30")
    result = hiso_run(
        *args,
        "nan_policy=skip",
        "federation.rounds=6",
        "federation.max_skipped_rounds=6",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = sum(1 for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("skipped"))
    assert skipped >= 1
    assert json.loads((run_dir / "summary.json").read_text())["skipped_rounds"] == skipped
    last = result.stdout.strip().splitlines()[-1]
    assert f"{skipped} rounds skipped" in last
