"""A built wheel carries the config groups (conf/ beside the package in the checkout) and runs
outside the checkout: `hiso-run --cfg job` composes and validates from the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_composes_outside_the_checkout(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # no PYTHONPATH anywhere: a checkout on it (with the egg-info an in-tree build leaves) would
    # make pip see hiso-run as installed already and the fresh environment import the checkout
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        return subprocess.run(command, capture_output=True, text=True, cwd=outside, env=clean)

    def output(*args: str | Path) -> str:
        done = run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    output(*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, ROOT)
    (wheel,) = dist.glob("hiso_run-*.whl")
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    python, hiso_run = env_dir / "bin" / "python", env_dir / "bin" / "hiso-run"
    site = output(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    output(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    # the dependencies come from this environment as a plain path (its .pth files, the editable
    # finder of the checkout included, are not processed), after the wheel's own site-packages
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = output(python, "-c", "import hiso.config as c; print(c.__file__, c.conf_dir())")
    assert all(path.startswith(site.strip()) for path in where.split()), where
    assert "name: decomfl" in output(hiso_run, "--cfg", "job", "algo=decomfl", "+experiment=digits")
    bad = run(hiso_run, "--cfg", "job", "optim.lr=-1")
    assert bad.returncode == 2 and "optim.lr" in bad.stderr
    # every package of the checkout is in the wheel's explicit list
    shipped = output(python, "-c", "import importlib.metadata as m; print(m.files('hiso-run'))")
    for package in find_packages(ROOT, include=["hiso*"]):
        assert package.replace(".", "/") + "/__init__.py" in shipped, package
