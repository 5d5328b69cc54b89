"""`hiso-run-export RUN_DIR --out DIR`: a run's trained model in a form other tools load.

A language model becomes a Hugging Face folder (`save_pretrained` model and tokenizer; with LoRA
the peft adapter, or with --merge the model with the adapters merged in); the CNN becomes a torch
state dict with the module's parameter names (`model.pt`) beside `cnn.json` (its sizes). Each
export also writes `hiso-export.json`: the run, the round exported and its scores.

The parameters come from the run directory: `best-model.pt` (the best validation round's, when
that is not the last round) or the newest checkpoint (the last round's); the model they fit is
built again from the run's saved config, so the base weights must still be where the run read
them (`model.path`, the hub cache or the SmolLM2 package).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hiso.schema import RunConfig, SetupError

EXPORT_RECORD = "hiso-export.json"


def saved_config(run_dir: Path) -> Any:
    """The run's config: Hydra's `.hydra/config.yaml`, else the newest checkpoint's."""
    import hiso.config  # noqa: F401  (registers the checkpoint_name resolver the file may use)

    schema = OmegaConf.structured(RunConfig)
    hydra_file = run_dir / ".hydra" / "config.yaml"
    if hydra_file.is_file():
        return OmegaConf.merge(schema, OmegaConf.load(hydra_file))
    state = newest_checkpoint(run_dir)
    if state is None:
        raise SetupError(f"{run_dir} holds no .hydra/config.yaml and no checkpoint: not a run")
    return OmegaConf.merge(schema, state["config"])


def newest_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    from hiso.resume import CHECKPOINTS
    from hiso.tracking.checkpoint import Checkpoints

    return Checkpoints(run_dir / CHECKPOINTS, keep=1).load_newest().state


def chosen_parameters(run_dir: Path, which: str) -> tuple[int, list[Any]]:
    """(round, trainable parameters in the model's order) of the `best` or `last` round."""
    import torch

    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        raise SetupError(f"{run_dir} has no summary.json: the run is still going or was killed")
    summary = json.loads(summary_file.read_text())
    last = summary.get("round_reached")
    best = summary.get("best_round")
    if which == "best" and best is not None and best != last:
        return best, torch.load(run_dir / "best-model.pt", map_location="cpu", weights_only=True)
    state = newest_checkpoint(run_dir)
    if state is None or state["simulation"]["round"] != last:
        raise SetupError(
            f"--round {which}: round {last}'s model was not saved in {run_dir} (no checkpoint of "
            "it: checkpoint.keep=0, or the run was killed); --round best exports it only when the "
            "best round is an earlier one"
        )
    return last, list(state["simulation"]["parameters"])


def export(run_dir: Path, out: Path, which: str = "best", merge: bool = False) -> Path:
    """Write the model of the run's `which` round ("best" or "last") into `out`; return `out`."""
    import torch

    from hiso.models import build_model

    run_dir, out = Path(run_dir), Path(out)
    rnd, parameters = chosen_parameters(run_dir, which)
    cfg = saved_config(run_dir)
    model, tokenizer = build_model(cfg.model, torch.device("cpu"), cfg.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if [tuple(p.shape) for p in trainable] != [tuple(t.shape) for t in parameters]:
        raise SetupError(
            f"the parameters saved in {run_dir} do not fit the model its config builds"
        )
    with torch.no_grad():
        for p, t in zip(trainable, parameters, strict=True):
            p.copy_(t)
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
    summary = json.loads((run_dir / "summary.json").read_text())
    record = {
        "run_dir": str(run_dir.resolve()),
        "round": rnd,
        "which": which,
        "merged": bool(merge and cfg.model.lora.r > 0),
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "algorithm": cfg.algo.name,
        "test_accuracy": summary.get(
            "test_accuracy_at_best" if which == "best" else "final_test_accuracy"
        ),
    }
    (out / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hiso-run-export", description="Export a run's model (see hiso/export.py)."
    )
    parser.add_argument("run_dir", type=Path, help="the run directory (with its summary.json)")
    parser.add_argument("--round", choices=("best", "last"), default="best", dest="which")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--merge", action="store_true", help="LoRA: merge the adapters in")
    args = parser.parse_args(argv)
    try:
        out = export(args.run_dir, args.out, args.which, args.merge)
    except SetupError as error:
        print(f"hiso-run-export: {error}", file=sys.stderr)
        return 2
    print(f"hiso-run-export: {args.which} round of {args.run_dir} written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
