"""Every algorithm's metrics and final parameters, bit for bit, against a recording made before
the algorithms became components (tests/data/recorded_metrics.json): a refactor that moves code
must not move a single bit. Regenerate only for a change meant to alter results:
`python tests/test_recorded_metrics.py` (and say why in the commit)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.tasks import build_task

RECORDING = Path(__file__).resolve().parent / "data" / "recorded_metrics.json"
ALGORITHMS = (
    ("decomfl",),
    ("hiso",),
    ("hiso", "algo.curvature_scope=global"),
    ("mezo",),
    ("fedzo",),
    ("fedavg",),
    ("fedadam",),
    ("fedyogi",),
    ("fedadagrad",),
)
# keys that measure the machine, not the computation
UNRECORDED = {"round_time", "wall_time", "peak_memory_bytes", "direction_cache_reason"}
DIGITS = (
    "+experiment=digits",
    "logger=none",
    "federation.rounds=3",
    "federation.eval_every=2",
    "federation.local_steps=2",
    "optim.batch_size=8",
    "algo.num_perturbations=3",
)
LM = (
    "model.name=tiny",
    "dataset=movie-reviews",
    "dataset.template=review",
    "dataset.max_train=64",
    "dataset.max_test=16",
    "dataset.max_length=24",
    "federation.num_clients=4",
    "federation.clients_per_round=2",
    "federation.local_steps=2",
    "federation.rounds=2",
    "federation.eval_every=0",
    "optim.batch_size=4",
    "optim.lr=1e-3",
    "algo.num_perturbations=2",
    "logger=none",
)
ONE_CLIENT = ("federation.num_clients=1", "federation.clients_per_round=1")


def case_overrides(case: str, algo: tuple[str, ...], checkpoint: Path | None) -> list[str]:
    name, *extra = algo
    mezo = ONE_CLIENT if name == "mezo" else ()
    if case == "digits":
        return [*DIGITS, f"algo={name}", *extra]
    return [f"model.path={checkpoint}", *LM, f"algo={name}", *mezo, *extra]


def case_id(case: str, algo: tuple[str, ...]) -> str:
    return "-".join((case, *algo))


def run_case(overrides: list[str]) -> dict[str, Any]:
    """The records (machine-dependent keys aside), the run's extras and a digest of the final
    parameters' bytes."""
    cfg = compose_config(overrides)
    device = torch.device("cpu")
    model, tokenizer = build_model(cfg.model, device, cfg.seed)
    sim = Simulation(cfg, model, build_task(cfg, tokenizer), device)
    records: list[dict[str, Any]] = []
    extras = sim.run(records.append)
    digest = hashlib.sha256()
    for x in sim.master:
        digest.update(x.detach().cpu().numpy().tobytes())
    return {
        "records": [{k: v for k, v in r.items() if k not in UNRECORDED} for r in records],
        "extras": {k: v for k, v in extras.items() if k not in UNRECORDED},
        "parameters_sha256": digest.hexdigest(),
    }


def lm_checkpoint(directory: Path) -> Path:
    import lm_fixtures

    model, tokenizer = lm_fixtures.tiny_opt()
    return lm_fixtures.save_checkpoint(model, tokenizer, directory)


@pytest.fixture(scope="module")
def opt_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lm_checkpoint(tmp_path_factory.mktemp("recorded-opt"))


def assert_same(recorded: dict[str, Any], now: dict[str, Any]) -> None:
    """Every recorded value unchanged, floats compared with ==; keys added since are allowed."""
    assert now["parameters_sha256"] == recorded["parameters_sha256"]
    assert len(now["records"]) == len(recorded["records"])
    for old, new in zip(recorded["records"], now["records"], strict=True):
        assert {k: new.get(k) for k in old} == old
    assert {k: now["extras"].get(k) for k in recorded["extras"]} == recorded["extras"]


@pytest.mark.parametrize("algo", ALGORITHMS, ids=lambda a: "-".join(a))
@pytest.mark.parametrize("case", ["digits", "lm"])
def test_metrics_match_the_recording_bit_for_bit(
    case: str, algo: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    checkpoint = request.getfixturevalue("opt_checkpoint") if case == "lm" else None
    recorded = json.loads(RECORDING.read_text())[case_id(case, algo)]
    assert_same(recorded, run_case(case_overrides(case, algo, checkpoint)))


def record(directory: Path) -> None:
    checkpoint = lm_checkpoint(directory)
    out = {
        case_id(case, algo): run_case(case_overrides(case, algo, checkpoint))
        for case in ("digits", "lm")
        for algo in ALGORITHMS
    }
    RECORDING.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory() as scratch:
        record(Path(scratch))
