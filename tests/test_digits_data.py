"""The digits as scikit-learn gives them, read without importing scikit-learn: the same images,
labels and stratified split, the split kept in hiso-run's cache after the first process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hiso.tasks.vision import read_digits


def test_digits_equal_scikit_learns_load_and_split(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HISO_CACHE", str(tmp_path))
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    for _ in ("computed", "from the cache"):
        data = read_digits(validation_size=0)
        assert np.array_equal(data.train[0], x_train) and np.array_equal(data.train[1], y_train)
        x, y = data.heldout["test"]
        assert np.array_equal(x, x_test) and np.array_equal(y, y_test)
        assert data.train[0].dtype == np.float32 and data.train[1].dtype == y_train.dtype
    assert len(list(tmp_path.glob("digits-split-sklearn-*.npz"))) == 1


def test_a_digits_run_does_not_load_scikit_learn_transformers_wandb_or_matplotlib(
    tmp_path: Path,
) -> None:
    """What a digits run imports: a process with the split cached loads none of the libraries
    it does not use (each costs 0.4-2 s of start-up)."""
    code = (
        "import sys\n"
        "from hiso.cli import run\n"
        "from hiso.config import compose_config\n"
        "run(compose_config(['+experiment=digits', 'federation.rounds=1', 'logger=none']),"
        f" {str(tmp_path / 'run')!r})\n"
        "print(sorted({'sklearn', 'transformers', 'wandb', 'matplotlib'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "HISO_CACHE": str(tmp_path / "cache")}
    for expected in ("['sklearn']", "[]"):  # the first process computes the split, then cached
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == expected
