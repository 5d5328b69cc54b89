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
    dist = tmp_path / "dist"
    # no PYTHONPATH anywhere: a checkout on it (with the egg-info an in-tree build leaves) would
    # make pip see hiso-run as installed already and the fresh environment import the checkout
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        check=True,
        cwd=tmp_path,
        env={**clean, "PIP_NO_INDEX": "1"},
    )
    (wheel,) = dist.glob("hiso_run-*.whl")
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    fresh_python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=clean,
    ).stdout.strip()
    subprocess.run(
        [
            *pip,
            "--python",
            str(fresh_python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        env=clean,
    )
    # the dependencies come from this environment as a plain path (its .pth files, the editable
    # finder of the checkout included, are not processed), after the wheel's own site-packages
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run(
        [str(fresh_python), "-c", "import hiso.config as c; print(c.__file__, c.conf_dir())"],
        check=True,
        capture_output=True,
        text=True,
        cwd=outside,
        env=clean,
    ).stdout.split()
    assert all(path.startswith(site) for path in where), where
    job = subprocess.run(
        [str(env_dir / "bin" / "hiso-run"), "--cfg", "job", "algo=decomfl", "+experiment=digits"],
        capture_output=True,
        text=True,
        cwd=outside,
        env=clean,
    )
    assert job.returncode == 0, job.stderr
    assert "name: decomfl" in job.stdout
    bad = subprocess.run(
        [str(env_dir / "bin" / "hiso-run"), "--cfg", "job", "optim.lr=-1"],
        capture_output=True,
        text=True,
        cwd=outside,
        env=clean,
    )
    assert bad.returncode == 2 and "optim.lr" in bad.stderr
    # every package of the checkout is in the wheel's explicit list
    shipped = subprocess.run(
        [str(fresh_python), "-c", "import importlib.metadata as m; print(m.files('hiso-run'))"],
        check=True,
        capture_output=True,
        text=True,
        cwd=outside,
        env=clean,
    ).stdout
    for package in find_packages(ROOT, include=["hiso*"]):
        assert package.replace(".", "/") + "/__init__.py" in shipped, package
