"""Running `hiso-run` on bad input in tests: the digits and local-text command lines, the
default data files, a bad-input case, and the console script's main run in-process (the
fixture that fails a test where a model is built, no_model, is in tests/conftest.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hiso import cli

DIGITS = ("+experiment=digits", "logger=none", "federation.rounds=2")
ROWS = "".join(f"a review sentence number {i},{i % 2}\n" for i in range(8))
TEXT = (
    "model=opt-125m",
    "dataset=sst2",
    "dataset.source=local",
    "dataset.data_files.train={tmp}/train.csv",
    "dataset.data_files.test={tmp}/test.csv",
    "federation.num_clients=2",
    "federation.clients_per_round=1",
    "optim.batch_size=2",
    "logger=none",
    "federation.rounds=2",
)


@dataclass
class Case:
    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]  # every string appears in the one message
    files: dict[str, str | bytes] = field(default_factory=dict)


def write_files(folder: Path, files: dict[str, str | bytes]) -> None:
    default = {"train.csv": "sentence,label\n" + ROWS, "test.csv": "sentence,label\n" + ROWS}
    for name, content in (default | files).items():
        if isinstance(content, str):
            content = content.encode()
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["hiso-run", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return int(stop.value.code)
