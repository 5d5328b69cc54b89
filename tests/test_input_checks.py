"""Input checks called directly (the wandb key, an unwritable output directory, the schema walk
over fields it does not name, the digits cut to max_train and max_test, clients and partitions
that would wait forever) and the exit codes of real `hiso-run` processes as a shell sees them."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from hiso import preflight
from hiso.config import check_schema
from hiso.data.partition import dirichlet_partition
from hiso.federation.clients import SimulatedClient
from hiso.schema import AlgoConfig, ConfigError, LoggerConfig, WandbConfig
from hiso.tasks import read_task_data

from cli_inputs import DIGITS, TEXT, write_files
from configs import digits_config

HISO_RUN = str(Path(sys.executable).parent / "hiso-run")


def test_wandb_online_accepts_a_key_from_the_environment_or_netrc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = LoggerConfig(wandb=WandbConfig(mode="online"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(ConfigError, match=r"logger\.wandb"):
        preflight.check_logger(online)
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password k0\n")
    preflight.check_logger(online)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "k1")
    preflight.check_logger(online)
    preflight.check_logger(LoggerConfig(wandb=WandbConfig(mode="offline")))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="not writable"):
        preflight.check_output_dir("hydra.run.dir", locked / "run")


@dataclass
class LoraLike:
    r: int = 0
    alpha: float = 16.0


@dataclass
class AlgoWithMore(AlgoConfig):
    """AlgoConfig as another stream extends it: fields the checks do not name."""

    server_tau: float = 1e-8
    lora: LoraLike | None = field(default_factory=LoraLike)


def test_the_schema_walk_covers_fields_it_does_not_name() -> None:
    cfg = OmegaConf.structured(AlgoWithMore)
    check_schema(cfg, AlgoWithMore, "algo.")
    for key, value, named in (
        ("server_tau", math.nan, "algo.server_tau=nan"),
        ("lora.alpha", math.inf, "algo.lora.alpha=inf"),
    ):
        bad = cfg.copy()
        OmegaConf.update(bad, key, value)
        with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
            check_schema(bad, AlgoWithMore, "algo.")
    with open_dict(cfg.lora):
        cfg.lora.dropout = 0.1
    with pytest.raises(
        ConfigError, match=r"algo\.lora\.dropout=0\.1.*fields of algo\.lora are r, alpha"
    ):
        check_schema(cfg, AlgoWithMore, "algo.")


def test_max_train_and_max_test_cut_the_digits() -> None:
    data = read_task_data(digits_config("dataset.max_train=100", "dataset.max_test=50"))
    assert data.num_train + len(data.heldout["validation"][1]) == 100
    assert len(data.heldout["test"][1]) == 50
    data = read_task_data(digits_config("dataset.validation_size=0"))
    assert data.num_train == 1437 and len(data.heldout["test"][1]) == 360


@pytest.fixture
def seconds_left() -> Iterator[None]:
    """Fail a test that is still running after 10 s instead of letting it wait forever."""

    def stop(*_: object) -> None:
        raise TimeoutError("still waiting after 10 s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_client_without_examples_fails_instead_of_waiting(seconds_left: None) -> None:
    with pytest.raises(ValueError, match="client 3 has no training examples"):
        SimulatedClient(3, np.empty(0, dtype=np.int64), run_seed=0).next_batch(8)


def test_a_non_finite_dirichlet_draw_fails_instead_of_waiting(seconds_left: None) -> None:
    labels = np.arange(40) % 4
    with pytest.raises(ValueError, match="non-finite class proportions"):
        dirichlet_partition(labels, num_clients=4, alpha=math.nan, seed=0)


# ---- real processes: the exit codes as a shell sees them ----


def hiso_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_SILENT": "true"}
    return subprocess.run(
        [HISO_RUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_exit_codes_of_real_processes(tmp_path: Path) -> None:
    """2 for a typo Hydra would reject, a broken data file and a bad job of a sweep (no job
    runs); 1 for a run that fails once started."""
    write_files(tmp_path, {"train.csv": "sentence,label\nok,1\nbad,0.7\n"})
    text_args = [a.replace("{tmp}", str(tmp_path)) for a in TEXT]
    sweep = tmp_path / "sweep"
    for args, expected in (
        ((*DIGITS, "optim.lrr=1"), "optim.lrr=1 is not allowed"),
        (text_args, "train.csv: 1 label(s) outside the label set (line 3: '0.7')"),
        (("-m", *DIGITS, "optim.lr=1e-3,nan", f"hydra.sweep.dir={sweep}"), "optim.lr=nan"),
    ):
        result = hiso_run(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if line.startswith("hiso-run:")]
        assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not sweep.exists() and not list(tmp_path.rglob("metrics.jsonl"))


def test_a_failed_run_does_not_end_a_sweep(tmp_path: Path) -> None:
    """A diverging learning rate fails its own run (summary `failed`), the sweep's other runs
    still run, and the sweep exits 1 naming the failed run; alone, the same run exits 1."""
    sweep = tmp_path / "sweep"
    result = hiso_run("-m", *DIGITS, "optim.lr=1e6,1e-3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert [s["status"] for s in summaries] == ["failed", "finished"]
    assert "Traceback" not in result.stderr
    report = result.stderr[result.stderr.index("hiso-run: 1 run(s) of this sweep failed") :]
    assert "optim.lr=1000000.0" in report and "NonFiniteLossError" in report
    assert "optim.lr=0.001" not in report
    alone = hiso_run(*DIGITS, "optim.lr=1e6", f"hydra.run.dir={tmp_path / 'alone'}", cwd=tmp_path)
    assert alone.returncode == 1 and "NaN or infinite" in alone.stderr
