"""The import direction of docs/architecture.md: no module of a lower layer imports one above it
(optim never imports federation or algorithms; the message types import no hiso module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HISO = Path(__file__).resolve().parents[1] / "hiso"
# module prefix -> layer (the longest matching prefix wins); unlisted modules sit at the top
LAYERS = {
    "hiso.schema": 1,
    "hiso.protocol": 1,
    "hiso.seeding": 1,
    "hiso.naming": 1,
    "hiso.hub": 1,
    "hiso.caches": 1,
    "hiso.optim": 2,
    "hiso.data": 3,
    "hiso.tasks": 3,
    "hiso.models": 3,
    "hiso.tracking": 3,
    "hiso.federation": 4,
    "hiso.algorithms": 5,
    "hiso.federation.evaluation": 6,
    "hiso.federation.simulator": 6,
}
TOP = 7


def layer(module: str) -> int:
    if module == "hiso":  # the empty package itself (imported to find its directory)
        return 1
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(matches, key=len)] if matches else TOP


def imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "hiso":  # from hiso import x
            out += [f"hiso.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hiso"):
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("hiso")]
    return out


MODULES = sorted(HISO.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(HISO.parent)))
def test_no_import_points_up(path: Path) -> None:
    parts = path.relative_to(HISO.parent).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    up = [m for m in imports(path) if layer(m) > layer(module)]
    assert not up, f"{module} (layer {layer(module)}) imports {up} from a layer above"


def test_the_check_catches_optim_importing_federation() -> None:
    assert layer("hiso.federation.wire") > layer("hiso.optim.zo")
    assert layer("hiso.algorithms.hiso") > layer("hiso.federation.server")
