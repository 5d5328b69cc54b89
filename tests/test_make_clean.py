"""`make clean` removes what the build made and never a result; `make clean-results` removes the
runs. Run on a copy of the Makefile in a scratch checkout holding a fake build and fake runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILT = (".venv", ".cache/hiso", "build", "dist", "hiso_run.egg-info")  # each holds a file
RESULTS = ("outputs/2026-01-01/run/summary.json", "multirun/2026-01-01/0/summary.json")


def make(target: str, where: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    subprocess.run(["make", "--no-print-directory", target], cwd=where, env=env, check=True)


def test_clean_keeps_results_and_clean_results_removes_them(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    for name in (*(f"{built}/file" for built in BUILT), *RESULTS, "docs/results/digits.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    make("clean", tmp_path)
    assert [name for name in BUILT if (tmp_path / name).exists()] == []
    assert all((tmp_path / name).read_text() == "x" for name in RESULTS)
    make("clean-results", tmp_path)
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    assert (tmp_path / "docs/results/digits.md").is_file() and (tmp_path / "Makefile").is_file()
