"""The real `hiso-run` end to end on digits, and bad configurations stopping before training."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hiso.config import compose_config
from hiso.hub import OFFLINE_SWITCHES
from hiso.schema import ConfigError
from hiso.tracking.records import human_bytes, read_jsonl
from hiso.tracking.wandb_reader import read_wandb_offline_history

HISO_RUN = shutil.which("hiso-run", path=str(Path(sys.executable).parent))
CONF = Path(__file__).resolve().parents[1] / "conf"
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
    # stderr is a pipe here: plain lines at the evaluations, no bar; the last line rounded
    assert "\r" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("round ")]
    assert [line.split()[1] for line in progress] == ["0/20", "10/20", "20/20"]
    assert re.search(
        r"val_accuracy \d+\.\d\d%.* bytes [\d.]+ KiB  [\d.]+ s/round  eta 0:00:\d\d$", progress[1]
    )
    last = result.stdout.strip().splitlines()[-1]
    figures = r"initial_test_accuracy=\d+\.\d\d%, final_test_accuracy=\d+\.\d\d%, "
    assert re.match(r"\[hiso-run\] " + figures, last), last
    assert (
        "rounds_to_target=n/a" in last
        and f"total_bytes={human_bytes(summary['total_bytes'])};" in last
    )
    seconds = re.search(r"seconds_per_round=([\d.e-]+),", last)
    assert seconds and seconds[1] == f"{summary['seconds_per_round']:.3g}"


def test_help_config_printing_and_multirun(tmp_path: Path) -> None:
    shown = hiso_run("--help", cwd=tmp_path).stdout
    assert shown.startswith("hiso-run: federated zeroth-order fine-tuning with scalar-only")
    assert (
        "algo: decomfl, fedadagrad, fedadam, fedavg, fedkseed, fedkseed-pro, fedyogi, fedzo, hiso, "
        "mezo" in shown
    )
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert f"experiment: {', '.join(experiments)}" in shown and "+experiment=NAME" in shown
    assert "docs/config.md" in shown
    job = hiso_run("+experiment=digits", "algo=decomfl", "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0 and "name: decomfl" in job.stdout
    invalid = hiso_run("+experiment=digits", "optim.lr=-1", "--cfg", "job", cwd=tmp_path)
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert invalid.stderr.strip() == "hiso-run: optim.lr=-1.0 is not allowed: a number > 0."
    # a sweep: every job validated and printed (Hydra itself refuses --cfg with -m)
    jobs = hiso_run("-m", "+experiment=digits", "algo=hiso,decomfl", "--cfg", "job", cwd=tmp_path)
    assert jobs.returncode == 0, jobs.stderr
    assert (
        jobs.stdout.count("# job ") == 2
        and "# job 1: +experiment=digits algo=decomfl" in jobs.stdout
    )
    assert "name: decomfl" in jobs.stdout.split("# job 1:")[1]
    bad = hiso_run("-m", "+experiment=digits", "optim.lr=1e-3,-1", "--cfg", "job", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "hiso-run: optim.lr=-1.0 is not allowed: a number > 0."
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


def test_a_missing_hub_model_fails_in_seconds_offline_without_the_switches_set(
    tmp_path: Path,
) -> None:
    """Called directly, with no HF_*_OFFLINE in the environment and an empty Hugging Face cache:
    the CLI goes offline itself, so no request is retried (online, this took a minute of retry
    warnings) and one message names the commands that fetch the model."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = subprocess.run(
        [HISO_RUN or "hiso-run", "model=opt-125m", "logger=none", f"hydra.run.dir={tmp_path}/r"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Retry" not in result.stderr and "Traceback" not in result.stderr
    (message,) = [line for line in result.stderr.splitlines() if line.startswith("hiso-run:")]
    for fix in ("`hf download facebook/opt-125m`", "model.path=DIR", "hub.online=true"):
        assert fix in message
    assert seconds < 60  # imports only (about 10 s on a busy 2-core machine); retries add 60 s


HUB_SWITCHES = (
    "import os, sys; import hiso.cli as cli; sys.argv[1:] = {args!r}; "
    "cli.check_command(); from huggingface_hub import constants; "
    "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('HF_DATASETS_OFFLINE'), "
    "constants.HF_HUB_OFFLINE)"
)


@pytest.mark.parametrize(
    ("args", "environment", "seen"),
    [
        ((), {}, "1 1 True"),
        (("hub.online=true",), {}, "None None False"),
        ((), {"HF_HUB_OFFLINE": "0"}, "0 1 False"),  # an explicit switch is kept
    ],
)
def test_the_cli_sets_the_offline_switches_unless_asked_online(
    tmp_path: Path, args: tuple[str, ...], environment: dict[str, str], seen: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES} | environment
    # hub.online=true needs a hub that answers (hiso/network.py): a local socket stands in
    hub = socket.socket()
    hub.bind(("127.0.0.1", 0))
    hub.listen()
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.getsockname()[1]}"
    code = HUB_SWITCHES.format(args=["+experiment=digits", f"hydra.run.dir={tmp_path}", *args])
    with hub:
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[-2] == seen


def test_a_sweep_cannot_mix_online_and_offline_jobs(tmp_path: Path) -> None:
    result = hiso_run("-m", *FAST, "hub.online=true,false", cwd=tmp_path)
    assert result.returncode == 2 and "hub.online" in result.stderr


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


def test_user_config_groups_from_config_dir(tmp_path: Path) -> None:
    """A user's own group option, outside the checkout, composes with the shipped groups."""
    mine = tmp_path / "my-conf" / "federation"
    mine.parent.mkdir()
    mine.mkdir()
    (mine / "big.yaml").write_text("defaults:\n  - default\n  - _self_\nnum_clients: 40\n")
    cfg = hiso_run("--config-dir", str(mine.parent), "federation=big", "--cfg", "job", cwd=tmp_path)
    assert cfg.returncode == 0, cfg.stderr
    assert "num_clients: 40" in cfg.stdout and "clients_per_round:" in cfg.stdout
    missing = hiso_run("federation=big", "--cfg", "job", cwd=tmp_path)
    assert missing.returncode != 0 and "big" in missing.stderr
