"""Bringing your own checkpoint: `model.path=DIR` names the run after it unless `model.name` is
given, and with $HISO_CACHE set a run writes its caches there and nothing under the home
directory (the real `hiso-run`, HOME pointed at an empty folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import HISO_RUN

from hiso.caches import REDIRECTED
from hiso.config import compose_config
from hiso.naming import checkpoint_name

from lm_fixtures import save_checkpoint, tiny_llama

TINY_RUN = (
    "dataset.template=review",
    "dataset.max_train=64",
    "dataset.max_test=8",
    "dataset.validation_size=8",
    "dataset.max_length=32",
    "federation.num_clients=2",
    "federation.clients_per_round=1",
    "federation.rounds=1",
    "optim.batch_size=4",
    "algo.num_perturbations=2",
)


@pytest.fixture(scope="module", params=["checkpoint", "given"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A one-round `hiso-run model.path=.../my-tiny-llama` (with `model.name=x` when "given")
    in a fresh folder, HOME an empty folder and HISO_CACHE another: (the folder, the label
    expected)."""
    assert HISO_RUN is not None
    root = tmp_path_factory.mktemp(request.param)
    model, tokenizer = tiny_llama()
    checkpoint = save_checkpoint(model, tokenizer, root / "my-tiny-llama")
    given = ("model.name=x",) if request.param == "given" else ()
    (root / "home").mkdir()
    env = {"HOME": str(root / "home"), "HISO_CACHE": str(root / "cache"), "WANDB_SILENT": "true"}
    result = subprocess.run(
        [HISO_RUN, f"model.path={checkpoint}", *given, *TINY_RUN],
        cwd=root,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, "x" if given else "my-tiny-llama"


def _environment(env: dict[str, str]) -> dict[str, str]:
    """os.environ with `env` applied, offline, without the variables that would move the
    caches themselves (a user's own settings, which hiso-run keeps)."""
    moved = {"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", *REDIRECTED}
    moved |= {"HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN_PATH"}
    kept = {k: v for k, v in os.environ.items() if k not in moved}
    return {**kept, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}


def test_the_run_is_labelled_after_the_checkpoint_unless_named(run) -> None:
    root, label = run
    (run_dir,) = (root / "outputs").glob("*/*")
    assert run_dir.name.endswith(f"_hiso_{label}_movie-reviews")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == label
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    assert f"hiso-{label}-movie-reviews-s0".encode() in wandb_run.read_bytes()


def test_caches_go_under_hiso_cache_and_home_stays_empty(run) -> None:
    root, _ = run
    assert [p.relative_to(root) for p in (root / "home").rglob("*")] == []
    written = {p.relative_to(root / "cache").parts[0] for p in (root / "cache").rglob("*")}
    assert "matplotlib" in written and "wandb" in written
    (run_dir,) = (root / "outputs").glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["direction_cache"] in ("on", "off") and summary["direction_cache_bytes"] >= 0


def test_hugging_face_caches_follow_hiso_cache(tmp_path: Path) -> None:
    """The hub and datasets caches and the saved login, as the libraries read them at import."""
    code = (
        "from hiso.caches import redirect_caches; redirect_caches()\n"
        "import datasets.config as d, huggingface_hub.constants as h\n"
        "print(h.HF_HUB_CACHE, d.HF_DATASETS_CACHE, h.HF_TOKEN_PATH, sep='\\n')\n"
    )
    env = _environment({"HISO_CACHE": str(tmp_path), "HOME": str(tmp_path / "home")})
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == [str(tmp_path / "huggingface/hub"), str(tmp_path / "huggingface/datasets")]
    assert out[2] == str(tmp_path / "home/.cache/huggingface/token")  # a saved login still reads


@pytest.mark.parametrize(
    "folder, config, name",
    [
        ("my-tiny-llama", {"model_type": "llama"}, "my-tiny-llama"),
        (
            "hub/models--facebook--opt-125m/snapshots/" + "0a" * 20,
            {"model_type": "opt"},
            "opt-125m",
        ),
        ("runs/checkpoint-500", {"model_type": "qwen2"}, "qwen2"),
        ("final", {"_name_or_path": "org/My Model", "model_type": "gemma"}, "My-Model"),
    ],
)
def test_checkpoint_names(tmp_path: Path, folder: str, config: dict, name: str) -> None:
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "config.json").write_text(json.dumps(config))
    assert checkpoint_name(str(tmp_path / folder), "smollm2-135m") == name
    assert checkpoint_name(None, "smollm2-135m") == "smollm2-135m"


def test_the_groups_name_a_path_and_keep_a_given_name(tmp_path: Path) -> None:
    (tmp_path / "my-tiny-llama").mkdir()
    path = f"model.path={tmp_path / 'my-tiny-llama'}"
    assert compose_config(["model=opt-125m"], validated=False).model.name == "opt-125m"
    assert compose_config(["model=opt-125m", path], validated=False).model.name == "my-tiny-llama"
    named = compose_config([path, "model.name=x"], validated=False)
    assert named.model.name == "x"
