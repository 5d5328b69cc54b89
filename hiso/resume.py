"""Checkpointing a run and continuing it: which directory, which config, from which state.

A checkpoint holds the run's config (as it ran), the command-line overrides it was composed
from, the simulation's state (parameters, optimizer state, clients' data positions, server
history and sync points, wire counters) and the metrics logged so far. A resumed run continues
with the checkpoint's config; an override on the resuming command line is applied only when it
cannot change the trajectory (`federation.rounds`, evaluation cadence, logging, checkpointing,
speed settings whose results are bit-identical) and refused, by name, otherwise.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from hiso.config import compose_config, validate
from hiso.run_lock import run_directory
from hiso.schema import RunConfig, SetupError
from hiso.tracking.checkpoint import Checkpoints
from hiso.tracking.records import read_jsonl
from hiso.tracking.tracker import SUMMARY
from hiso.tracking.trajectory import (
    TRAJECTORY,
    CorruptTrajectory,
    TrajectoryWriter,
    read_trajectory,
)
from hiso.tracking.unwritten import writing

# Fields (and groups of fields) a resumed run may change: none of them alters the trajectory.
FREE_FIELDS = (
    "resume",
    "checkpoint",
    "logger",
    "federation.eval_every",
    "federation.test_every",
    "federation.score_test",
    "federation.target_accuracy",
    "federation.patience",
    "federation.checksum_every",
    "algo.direction_cache",
    "algo.direction_threads",
)
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"


@dataclass
class Start:
    """What a job runs: its config and overrides, in `run_dir`, from `state` (None: round 0);
    or nothing, when `finished` holds the summary of a run there that needs no more rounds."""

    cfg: Any
    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    state: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None


def _key(override: Any) -> tuple[str, str | None]:
    return override.key_or_group, override.package


def _without_resume(overrides: list[str]) -> list[str]:
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.input_line for o in parsed if o.key_or_group != "resume"]


def merge_overrides(saved: list[str], new: list[str]) -> list[str]:
    """The saved overrides with those naming the same key (or group) replaced by the new ones."""
    parser = OverridesParser.create()
    replaced = {_key(o) for o in parser.parse_overrides(list(new))}
    kept = [o.input_line for o in parser.parse_overrides(list(saved)) if _key(o) not in replaced]
    return kept + list(new)


def _compose(overrides: list[str]) -> dict[str, Any]:
    """The flattened config that `hiso-run OVERRIDES` composes today (inside the CLI, through
    its own Hydra search path)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if GlobalHydra.instance().is_initialized():
        name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "config"
        cfg = compose(config_name=name, overrides=overrides)
    else:
        cfg = compose_config(overrides, validated=False)
    return _leaves(OmegaConf.to_container(cfg, resolve=True))


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out |= _leaves(value, f"{prefix}{key}.")
    return {k.removesuffix("."): v for k, v in out.items()}


def _free(key: str) -> bool:
    return any(key == f or key.startswith(f + ".") for f in FREE_FIELDS)


def upgraded(config: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A checkpoint's config and overrides in today's shape: `logger.wandb` was one string (the
    mode) and `logger.project` its project before they became the group `logger.wandb`, so a
    run saved then continues with `logger.wandb.mode` and `logger.wandb.project`."""
    logger = config.get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("wandb"), str):
        wandb = {"mode": logger["wandb"]} | (
            {"project": logger["project"]} if "project" in logger else {}
        )
        rest = {k: v for k, v in logger.items() if k not in ("wandb", "project")}
        config = {**config, "logger": rest | {"wandb": wandb}}
    old = "logger.wandb="
    overrides = [
        "logger.wandb.mode=" + o.removeprefix(old) if o.startswith(old) else o for o in overrides
    ]
    return config, overrides


def reconcile(
    saved_config: dict[str, Any], saved_overrides: list[str], new_overrides: list[str], at: int
) -> tuple[DictConfig, list[str]]:
    """The config a run saved at round `at` continues with, given a new command line: the saved
    config with what the new overrides change (compared with the saved overrides, composed the
    same way), when none of the changes alters the trajectory. Raises SetupError naming the
    refused ones. Returns the config and the overrides it is now composed from."""
    merged = merge_overrides(saved_overrides, new_overrides)
    before, after = _compose(saved_overrides), _compose(merged)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), saved_config)
    problems = [
        f"{k}={after.get(k)!r} (the run has {OmegaConf.select(cfg, k)!r})"
        for k in changed
        if not _free(k) and k != "federation.rounds"
    ]
    if "federation.rounds" in changed:
        rounds = after["federation.rounds"]
        if cfg.optim.lr_schedule == "cosine":
            problems.append(
                f"federation.rounds={rounds} (the run has {cfg.federation.rounds}, and its "
                "cosine learning-rate schedule depends on the total)"
            )
        elif rounds < at:
            problems.append(f"federation.rounds={rounds} (below round {at}, the checkpoint's)")
    if problems:
        raise SetupError(
            "resume: these overrides would change the run's trajectory: "
            + "; ".join(problems)
            + ". A resumed run keeps the config it was started with; it may change "
            + "federation.rounds (not with optim.lr_schedule=cosine) and "
            + ", ".join(FREE_FIELDS[1:])
        )
    for k in changed:
        OmegaConf.update(cfg, k, after.get(k), merge=False)
    return cfg, merged


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def finished_rounds(summary: dict[str, Any] | None) -> int | None:
    """The rounds a finished run completed; None when the summary is not a finished run's.
    A summary without `status` predates it: such summaries were written only by finished runs."""
    if summary is None:
        return None
    if "status" not in summary:
        return summary.get("rounds")
    return summary.get("round_reached") if summary["status"] == "finished" else None


def _from_trajectory(run_dir: Path, snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """A resume state from `snapshot` (None: the starting model) and the run's trajectory, to the
    newest round that both the trajectory and metrics.jsonl hold (the snapshot's, or one after it
    reached by replay). None when the run has no trajectory (not replayable, or written before
    trajectories) or it falls short of the snapshot."""
    try:
        trajectory = read_trajectory(run_dir / TRAJECTORY)
        rows = read_jsonl(run_dir / METRICS)
    except (OSError, ValueError, CorruptTrajectory):
        return None
    reached = -1
    while reached + 1 < len(rows) and rows[reached + 1].get("round") == reached + 1:
        reached += 1
    reached = min(reached, len(trajectory.entries))
    at = None if snapshot is None else snapshot["simulation"]["round"]
    if reached < 0 or (at is not None and reached < at):
        return None
    header = trajectory.header
    return {
        "config": header["config"],
        "overrides": header["overrides"],
        "simulation": None if snapshot is None else snapshot["simulation"],
        "tracker": {"history": rows[: reached + 1]},
        "trajectory": trajectory.entries[:reached],
    }


def prepare(cfg: Any, output_dir: Path, overrides: list[str]) -> Start:
    """What this job runs. `resume=null`: a fresh run in `output_dir`. `resume=DIR`: continue
    DIR from its newest good snapshot, or further by replaying its trajectory (an error when it
    has neither). `resume=auto`: the same in `output_dir` when it has either, else a fresh run.
    A run that already finished at least the rounds asked for is not run again
    (Start.finished)."""
    overrides = _without_resume(overrides)
    if cfg.resume is None:
        return Start(cfg, output_dir, overrides)
    explicit = cfg.resume != "auto"
    run_dir = run_directory(cfg, output_dir)
    if explicit and not run_dir.is_dir():
        raise SetupError(f"resume={cfg.resume}: no such run directory")
    loaded = Checkpoints(run_dir / CHECKPOINTS, cfg.checkpoint.keep).load_newest()
    replayed = _from_trajectory(run_dir, loaded.state)
    fallback = f"resuming from {loaded.path}" if loaded.path else "none is left"
    at = None if loaded.state is None else loaded.state["simulation"]["round"]
    if replayed is not None and len(replayed["trajectory"]) != at:
        reached = len(replayed["trajectory"])
        fallback = (
            f"resuming from {loaded.path if loaded.path else 'the starting model'}, then "
            f"replaying rounds up to {reached} from {run_dir / TRAJECTORY}"
        )
    for rejected in loaded.rejected:
        print(f"hiso-run: checkpoint {rejected}; {fallback}", file=sys.stderr)
    summary = read_summary(run_dir)
    done = finished_rounds(summary)
    state = replayed or loaded.state
    if state is None:
        if explicit:
            raise SetupError(
                f"resume={cfg.resume}: no usable checkpoint in {run_dir / CHECKPOINTS} and no "
                f"{TRAJECTORY} with {METRICS} to replay (a run writes a checkpoint every "
                "checkpoint.every rounds, at its end and when stopped; a scalar-only run also "
                "its trajectory, round by round)"
            )
        if done is not None and done >= cfg.federation.rounds:
            return Start(cfg, run_dir, overrides, finished=summary)
        return Start(cfg, run_dir, overrides)
    at = state["tracker"]["history"][-1]["round"]
    saved_config, saved_overrides = upgraded(state["config"], state["overrides"])
    run_cfg, merged = reconcile(saved_config, saved_overrides, overrides, at)
    validate(run_cfg)
    if done is not None and done >= run_cfg.federation.rounds:
        return Start(run_cfg, run_dir, merged, finished=summary)
    return Start(run_cfg, run_dir, merged, state=state)


def keeps_best_model(cfg: Any) -> bool:
    """Whether the run keeps best-model.pt in its directory (checkpoint.best_model; by default
    only a run that cannot rebuild the best round's model by replaying its trajectory)."""
    if cfg.checkpoint.best_model is not None:
        return bool(cfg.checkpoint.best_model)
    from hiso.algorithms import algorithm_class

    return not algorithm_class(cfg.algo.name).replayable


class RunCheckpoints:
    """Writes a running simulation's snapshots, every `checkpoint.every` rounds (after the
    round is logged) and once at the end, whether the run finished or was stopped; and, for a
    replayable algorithm, its trajectory, one frame per round."""

    def __init__(
        self,
        run_dir: Path,
        cfg: Any,
        config: dict[str, Any],
        overrides: list[str],
        simulation: Any,
        tracker: Any,
    ) -> None:
        self.store = Checkpoints(run_dir / CHECKPOINTS, cfg.checkpoint.keep)
        self.every = cfg.checkpoint.every
        self.config = config
        self.overrides = list(overrides)
        self.simulation = simulation
        self.tracker = tracker
        # a resumed simulation starts at the round of the checkpoint it came from
        self.saved: int | None = simulation.round
        self.trajectory = self._trajectory(run_dir / TRAJECTORY)

    def _trajectory(self, path: Path) -> TrajectoryWriter | None:
        """The trajectory file, rewritten with this start's config and the rounds run so far
        (those of the file it continues); None for a run whose rounds are not replayable, one
        without rounds (`hiso-run eval`), or one resumed without the trajectory of its earlier
        rounds."""
        if not self.simulation.algorithm.replayable or self.simulation.cfg.federation.rounds == 0:
            return None
        done = self.simulation.round or 0
        entries: list[bytes] = []
        if done:
            with contextlib.suppress(OSError, CorruptTrajectory):
                entries = read_trajectory(path).entries[:done]
            if len(entries) < done:
                path.unlink(missing_ok=True)  # a stale file: it would not rebuild this run
                return None
        header = {"config": self.config, "overrides": self.overrides}
        return TrajectoryWriter(path, header, entries)

    def save(self) -> None:
        if self.store.keep == 0:  # checkpoint.keep=0: no snapshot at all
            return
        state = {
            "config": self.config,
            "overrides": self.overrides,
            "simulation": self.simulation.state_dict(),
            "tracker": self.tracker.state_dict(),
        }
        rnd = self.simulation.round
        with writing(f"the checkpoint of round {rnd}", self.store.path(rnd)):
            self.store.save(rnd, state)
        self.saved = rnd

    def on_round(self) -> None:
        if self.trajectory is not None:
            self.trajectory.append(self.simulation.algorithm.trajectory_entry())
        if self.every and self.simulation.round % self.every == 0:
            self.save()

    def at_end(self) -> None:
        if self.saved != self.simulation.round:
            self.save()
