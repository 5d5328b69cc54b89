"""`hiso-run-export RUN_DIR --out DIR`: a run's trained model in a form other tools load.

A language model becomes a Hugging Face folder (`save_pretrained` model and tokenizer; with LoRA
the peft adapter, or with --merge the model with the adapters merged in); the CNN becomes a torch
state dict with the module's parameter names (`model.pt`) beside `cnn.json` (its sizes). Each
export also writes `hiso-export.json`: the run, the round exported and its scores.

The parameters come from the run directory: `best-model.pt` (when the run kept it and the best
round is not the last), a checkpoint of the round asked for, or else, for a replayable run (seeds
and scalars: hiso, decomfl, mezo, fedkseed...), the model rebuilt by replaying its trajectory
(`trajectory.bin`) from the starting model or from the newest checkpoint before that round. The
model they fit is built again from the run's saved config, so the base weights (and, for a
replay, the training data) must still be where the run read them (`model.path`, the hub cache
or the SmolLM2 package).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hiso.schema import RunConfig, SetupError

EXPORT_RECORD = "hiso-export.json"
BEST_MODEL = "best-model.pt"


def saved_config(run_dir: Path) -> Any:
    """The run's config: Hydra's `.hydra/config.yaml`, else its trajectory's or its newest
    checkpoint's."""
    import hiso.config  # noqa: F401  (registers the checkpoint_name resolver the file may use)

    schema = OmegaConf.structured(RunConfig)
    hydra_file = run_dir / ".hydra" / "config.yaml"
    if hydra_file.is_file():
        return OmegaConf.merge(schema, OmegaConf.load(hydra_file))
    from hiso.tracking.trajectory import TRAJECTORY, CorruptTrajectory, read_trajectory

    with contextlib.suppress(OSError, CorruptTrajectory):
        return OmegaConf.merge(schema, read_trajectory(run_dir / TRAJECTORY).header["config"])
    state = checkpoints(run_dir).load_newest().state
    if state is None:
        raise SetupError(
            f"{run_dir} holds no .hydra/config.yaml, trajectory or checkpoint: not a run"
        )
    return OmegaConf.merge(schema, state["config"])


def checkpoints(run_dir: Path) -> Any:
    from hiso.resume import CHECKPOINTS
    from hiso.tracking.checkpoint import Checkpoints

    return Checkpoints(run_dir / CHECKPOINTS, keep=1)


def snapshot(run_dir: Path, at_most: int) -> dict[str, Any] | None:
    """The simulation state of the newest usable checkpoint of a round <= `at_most`."""
    from hiso.tracking.checkpoint import CorruptCheckpoint, read_checkpoint

    for rnd, path in checkpoints(run_dir).files():
        if rnd <= at_most:
            with contextlib.suppress(CorruptCheckpoint):
                return read_checkpoint(path)["simulation"]
    return None


def chosen_round(run_dir: Path, which: str) -> tuple[int, dict[str, Any]]:
    """The round `which` names ("best", "last" or a number) and the run's summary ({} for a run
    without one: a number only)."""
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if which.isdigit():
        return int(which), summary
    if not summary:
        raise SetupError(
            f"{run_dir} has no summary.json (the run is still going or was killed): "
            "--round best|last needs it; --round N exports round N"
        )
    best, last = summary.get("best_round"), summary.get("round_reached")
    return (best if which == "best" and best is not None else last), summary


def load_round(run_dir: Path, rnd: int, which: str, cfg: Any, model: Any, tokenizer: Any) -> None:
    """Put round `rnd`'s trainable parameters into `model`: from best-model.pt (`which` best),
    a checkpoint of that round, or a replay of the trajectory."""
    import torch

    saved = snapshot(run_dir, rnd)
    parameters = None
    if saved is not None and saved["round"] == rnd:
        parameters = list(saved["parameters"])
    elif which == "best" and (run_dir / BEST_MODEL).is_file():
        parameters = torch.load(run_dir / BEST_MODEL, map_location="cpu", weights_only=True)
    if parameters is None:
        replay(run_dir, rnd, saved, cfg, model, tokenizer)
        return
    trainable = [p for p in model.parameters() if p.requires_grad]
    if [tuple(p.shape) for p in trainable] != [tuple(t.shape) for t in parameters]:
        raise SetupError(
            f"the parameters saved in {run_dir} do not fit the model its config builds"
        )
    with torch.no_grad():
        for p, t in zip(trainable, parameters, strict=True):
            p.copy_(t)


def replay(
    run_dir: Path, rnd: int, saved: dict[str, Any] | None, cfg: Any, model: Any, tokenizer: Any
) -> None:
    """Rebuild round `rnd`'s model in `model` by replaying the run's trajectory, from the
    checkpoint `saved` (of an earlier round) or from the starting model."""
    import torch

    from hiso.algorithms import algorithm_class
    from hiso.federation.simulator import Simulation
    from hiso.preflight import read_checked_data
    from hiso.tasks import build_task
    from hiso.tracking.trajectory import TRAJECTORY, CorruptTrajectory, read_trajectory

    try:
        entries = read_trajectory(run_dir / TRAJECTORY).entries
    except (OSError, CorruptTrajectory) as error:
        replayable = algorithm_class(cfg.algo.name).replayable
        why = "" if replayable else f" (algo={cfg.algo.name} has none: its rounds are dense)"
        raise SetupError(
            f"round {rnd}'s model was not saved in {run_dir} (no checkpoint of it) and cannot "
            f"be rebuilt without its trajectory{why}: {error}"
        ) from error
    if rnd > len(entries):
        raise SetupError(f"--round {rnd}: {run_dir}'s trajectory holds rounds 0-{len(entries)}")
    task = build_task(cfg, tokenizer, read_checked_data(cfg))
    simulation = Simulation(cfg, model, task, torch.device("cpu"))
    if saved is not None:
        simulation.load_state_dict(saved)
    simulation.replay(entries[:rnd])


def export(run_dir: Path, out: Path, which: str = "best", merge: bool = False) -> Path:
    """Write the model of the run's `which` round ("best", "last" or a round number) into `out`;
    return `out`."""
    import torch

    from hiso.models import build_model

    run_dir, out = Path(run_dir), Path(out)
    rnd, summary = chosen_round(run_dir, which)
    cfg = saved_config(run_dir)
    model, tokenizer = build_model(cfg.model, torch.device("cpu"), cfg.seed)
    load_round(run_dir, rnd, which, cfg, model, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:  # the CNN
        torch.save(model.state_dict(), out / "model.pt")
        sizes = {"channels": cfg.model.channels, "hidden": cfg.model.hidden}
        (out / "cnn.json").write_text(json.dumps(sizes) + "\n")
    else:
        if merge and cfg.model.lora.r > 0:
            model = model.merge_and_unload()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    scores = {"best": "test_accuracy_at_best", "last": "final_test_accuracy"}
    record = {
        "run_dir": str(run_dir.resolve()),
        "round": rnd,
        "which": which,
        "merged": bool(merge and cfg.model.lora.r > 0),
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "algorithm": cfg.algo.name,
        "test_accuracy": summary.get(scores.get(which, ""), None),
    }
    (out / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hiso-run-export", description="Export a run's model (see hiso/export.py)."
    )
    parser.add_argument("run_dir", type=Path, help="the run directory (with its summary.json)")
    parser.add_argument(
        "--round",
        default="best",
        dest="which",
        help="best (the best validation round; default), last, or a round number N",
    )
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--merge", action="store_true", help="LoRA: merge the adapters in")
    args = parser.parse_args(argv)
    if args.which not in ("best", "last") and not args.which.isdigit():
        parser.error(f"--round {args.which}: best, last or a round number (0, 1, ...)")
    try:
        out = export(args.run_dir, args.out, args.which, args.merge)
    except SetupError as error:
        print(f"hiso-run-export: {error}", file=sys.stderr)
        return 2
    print(f"hiso-run-export: {args.which} round of {args.run_dir} written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
