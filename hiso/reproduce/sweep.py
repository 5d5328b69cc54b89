"""A table's runs on Hydra's multirun: one `hiso-run -m` per stage, any Hydra launcher.

Each run is a small config file of the `table_run` group (written under OUT/.runs) that sets the
algo, the cell's model and task, the method's and cell's overrides, the learning rate and the seed;
the multirun sweeps that group, so methods with different grids and overrides share one launch.
Every run lands in OUT/<run name> (`hydra.sweep.subdir` is the run's name), so a rerun finds it:
runs already finished with enough rounds are not launched again, and with `resume=auto` an
interrupted or shorter run continues where it stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hiso.reproduce.tables import Cell, Method, Table
from hiso.schema import SetupError
from hiso.tracking.atomic import write_text_atomic
from hiso.tracking.records import read_jsonl

GROUP = "table_run"
RUNS_DIR = ".runs"
COMMANDS = "commands.jsonl"
# the launcher field that bounds how many jobs run at once (None: the launcher has none); slurm
# is this project's preset of submitit_slurm (conf/hydra/launcher/slurm.yaml)
LAUNCHERS: dict[str, str | None] = {
    "basic": None,
    "joblib": "hydra.launcher.n_jobs",
    "submitit_local": None,
    "submitit_slurm": "hydra.launcher.array_parallelism",
    "slurm": "hydra.launcher.array_parallelism",
}


@dataclass(frozen=True)
class Run:
    cell: Cell
    method: Method
    lr: float
    seed: int

    @property
    def name(self) -> str:
        stem = f"{self.method.name}-lr{self.lr:g}-s{self.seed}"
        return f"{self.cell.name}/{stem}" if self.cell.name else stem

    def groups(self) -> list[tuple[str, str]]:
        chosen = {"algo": self.method.algo, "model": self.cell.model, "dataset": self.cell.dataset}
        return [(group, option) for group, option in chosen.items() if option]

    def values(self) -> list[str]:
        return [
            *self.method.overrides,
            *self.cell.overrides,
            f"optim.lr={self.lr!r}",
            f"seed={self.seed}",
        ]

    def config_file(self) -> str:
        """The run's `table_run` config: its group choices and values over the experiment."""
        defaults = [{f"override /{group}": option} for group, option in self.groups()]
        body = OmegaConf.to_yaml(OmegaConf.create({"defaults": defaults}))
        return (
            "# @package _global_\n"
            + body
            + OmegaConf.to_yaml(OmegaConf.from_dotlist(self.values()))
        )

    def overrides(self, table: Table, rounds: int) -> list[str]:
        """The run as plain `hiso-run` overrides: what its config file sets, as arguments."""
        return [
            f"+experiment={table.experiment}",
            *(f"{group}={option}" for group, option in self.groups()),
            *self.values(),
            *table.overrides,
            f"federation.rounds={rounds}",
        ]


def search_runs(table: Table, cells: tuple[Cell, ...]) -> list[Run]:
    """Every rate of every method's grid with every search seed (the rates a search adds come
    from hiso/reproduce/search.py)."""
    return [
        Run(cell, method, lr, seed)
        for cell in cells
        for method in table.cell_methods(cell)
        if len(method.lrs) > 1
        for lr in method.lrs
        for seed in table.search_seeds
    ]


def rates_on_disk(out: Path, cell: Cell, method: Method) -> list[float]:
    """Every learning rate with a run directory of the method in the cell (grid or added)."""
    folder = out / cell.name if cell.name else out
    pattern = re.compile(rf"{re.escape(method.name)}-lr(.+)-s\d+")
    found = set()
    for path in folder.glob(f"{method.name}-lr*-s*"):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir():
            try:
                found.add(float(match.group(1)))
            except ValueError:
                continue
    return sorted(found)


def final_runs(
    table: Table,
    cells: tuple[Cell, ...],
    chosen: dict[str, float],
    only: Collection[str] = (),
) -> list[Run]:
    """Every seed at the chosen learning rate (`chosen` keys: "<cell>/<method>"), of the methods
    named in `only` where it names any: a method kept only because a named one takes its rate
    from it has its rate read, not its finals run (they may be running beside, in another
    invocation)."""
    return [
        Run(cell, method, chosen[f"{cell.name}/{method.name}"], seed)
        for cell in cells
        for method in table.cell_methods(cell)
        if not only or method.name in only
        for seed in table.seeds
    ]


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's summary.json (None when it has none); SetupError when it is no JSON object."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SetupError(f"{path} is not a run's summary: not JSON ({error})") from None
    if not isinstance(summary, dict):
        kind = _JSON_KINDS.get(type(summary), "value")
        raise SetupError(f"{path} is not a run's summary: a JSON {kind}, not an object")
    return summary


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


def rounds_reached(summary: dict[str, Any]) -> int:
    return int(summary.get("round_reached", summary.get("rounds", 0)))


def is_finished(summary: dict[str, Any] | None, rounds: int) -> bool:
    """A summary of a run that finished (no status: written only at the end) with >= rounds."""
    if summary is None or summary.get("status", "finished") != "finished":
        return False
    return rounds_reached(summary) >= rounds


def is_failed(summary: dict[str, Any] | None) -> bool:
    """A run that stopped on an error (e.g. a NaN loss): launching it again would fail again."""
    return summary is not None and summary.get("status") == "failed"


def hiso_run_executable() -> str:
    beside = Path(sys.executable).with_name("hiso-run")
    found = str(beside) if beside.is_file() else shutil.which("hiso-run")
    if found is None:
        raise SystemExit("reproduce: the hiso-run console script is not installed")
    return found


@dataclass(frozen=True)
class Launcher:
    """How a stage's multirun is launched: the Hydra launcher, its bound on parallel jobs, extra
    overrides for every run, and the reproduce command that asked (recorded with the launch)."""

    name: str = "basic"
    jobs: int | None = None
    extra: tuple[str, ...] = ()
    invocation: tuple[str, ...] = ()


def multirun_command(
    table: Table,
    runs: list[Run],
    rounds: int,
    out: Path,
    launcher: Launcher,
    score_test: bool = True,
) -> list[str]:
    """The stage's `hiso-run -m` command; `score_test` false for a search, which selects on the
    validation split and never scores the test split (a search run's test scores would be
    unused, and a language model's test split costs minutes each time)."""
    out = out.resolve()
    command = [
        hiso_run_executable(),
        "-m",
        "--config-dir",
        str(out / RUNS_DIR),
        f"+experiment={table.experiment}",
        *table.overrides,
        f"federation.rounds={rounds}",
        *([] if score_test else ["federation.score_test=false"]),
        *launcher.extra,
        f"hydra.sweep.dir={out}",
        f"hydra.sweep.subdir=${{hydra.runtime.choices.{GROUP}}}",
        f"hydra/launcher={launcher.name}",
        "resume=auto",
    ]
    bound = LAUNCHERS[launcher.name]
    if launcher.jobs is not None and bound is not None:
        command.append(f"{bound}={launcher.jobs}")
    command.append(f"+{GROUP}=" + ",".join(run.name for run in runs))
    return command


def pending_runs(runs: list[Run], rounds: int, out: Path) -> list[Run]:
    """The runs not finished with `rounds` and not failed, saying why each other is skipped."""
    pending = []
    for run in runs:
        summary = read_summary(out / run.name)
        if is_finished(summary, rounds):
            print(f"[reproduce] skip {run.name}: finished ({rounds_reached(summary)} rounds)")
        elif is_failed(summary):
            print(f"[reproduce] skip {run.name}: failed at round {rounds_reached(summary)}")
        elif run not in pending:
            pending.append(run)
    return pending


def launch(
    stage: str, table: Table, runs: list[Run], rounds: int, out: Path, launcher: Launcher
) -> int:
    """Launch the runs of a stage that are neither finished with `rounds` nor failed; return the
    exit code. A failed run (e.g. a diverging learning rate) does not stop the multirun's other
    runs, but the multirun then exits 1 (and a launcher may stop it anyway), so the stage is
    launched again without the failed runs until a launch fails none. Every command is appended
    to OUT/commands.jsonl."""
    while True:
        pending = pending_runs(runs, rounds, out)
        if not pending:
            print(f"[reproduce] {stage}: every run is finished")
            return 0
        write_run_configs(out, pending)
        command = multirun_command(table, pending, rounds, out, launcher, stage != "search")
        record = {
            "stage": stage,
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "reproduce": list(launcher.invocation),
            "command": command,
        }
        with (out / COMMANDS).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        print(f"[reproduce] {stage}: {len(pending)} runs: {' '.join(command)}", flush=True)
        code = subprocess.run(command, check=False).returncode
        if code == 0 or not any(is_failed(read_summary(out / r.name)) for r in pending):
            return code


def write_run_configs(out: Path, runs: list[Run]) -> None:
    """Each run's `table_run` file under OUT/.runs, replaced whole; none is removed: another
    invocation on the same OUT (one method's search beside another's) may be reading its own."""
    for run in runs:
        path = out / RUNS_DIR / GROUP / f"{run.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, run.config_file())


def read_commands(out: Path) -> list[dict[str, Any]]:
    path = out / COMMANDS
    return read_jsonl(path) if path.is_file() else []
