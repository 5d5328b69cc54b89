"""`hiso-reproduce`: scripts/reproduce.py's command (the papers' tables), installed as a console
script. The script lives in the checkout's scripts/ (not a package, and not in a wheel), so this
loads it from the checkout the package runs from (an editable install, as `make setup` makes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce.py"


def main() -> None:
    if not SCRIPT.is_file():
        sys.exit(
            f"hiso-reproduce: {SCRIPT} is not there: the command runs from a checkout of "
            "hiso-run (pip install -e .), not from a wheel"
        )
    spec = importlib.util.spec_from_file_location("hiso_reproduce_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses in the script look their module up
    spec.loader.exec_module(script)
    script.main()
