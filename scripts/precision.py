"""How much bfloat16 forwards change the zeroth-order scalars: the same directions on the same
batches, estimated once with float32 forwards and once with bfloat16 autocast.

    python scripts/precision.py [--directions 20] [OVERRIDES...]

Defaults to the default job (SmolLM2-135M, movie reviews) with 2 sampled clients of batch 16;
OVERRIDES are Hydra overrides (e.g. algo.mu=1e-2). Prints the correlation, the relative error in
norm and the sign agreement of the bfloat16 scalars against the float32 ones, and the seconds each
estimate took.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import torch

from hiso.cli import resolve_device
from hiso.config import compose_config
from hiso.federation.server import sample_clients
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.seeding import derive_seed
from hiso.tasks import build_task

SETTING = ("logger=none", "algo=decomfl", "optim.batch_size=16", "federation.clients_per_round=2")


def compare(overrides: Sequence[str], directions: int) -> dict[str, Any]:
    """Scalars g (clients x directions) at the starting model in float32 and bfloat16 forwards."""
    base = [*SETTING, f"algo.num_perturbations={directions}", *overrides]
    cfg = compose_config(base)
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model, tokenizer = build_model(cfg.model, device, cfg.seed)
    task = build_task(cfg, tokenizer)
    scalars, seconds = {}, {}
    for dtype in ("float32", "bfloat16"):
        sim = Simulation(
            compose_config([*base, f"model.forward_dtype={dtype}"]), model, task, device
        )
        f = sim.cfg.federation
        ids = sample_clients(cfg.seed, 0, f.num_clients, f.clients_per_round)
        batches = [sim.clients[i].next_batch(cfg.optim.batch_size) for i in ids]
        zo = sim.algorithm.zo
        start = time.perf_counter()
        g, _ = zo.estimate(
            sim.params,
            sim.master,
            sim.work,
            sim.algorithm.state,
            derive_seed(cfg.seed, "precision"),
            sim.forwards.client_losses(batches),
        )
        seconds[dtype] = time.perf_counter() - start
        scalars[dtype] = g.astype(np.float64).ravel()
    a, b = scalars["float32"], scalars["bfloat16"]
    return {
        "overrides": list(overrides),
        "directions": directions,
        "correlation": float(np.corrcoef(a, b)[0, 1]),
        "relative_error": float(np.linalg.norm(b - a) / np.linalg.norm(a)),
        "sign_agreement": float(np.mean(np.sign(a) == np.sign(b))),
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directions", type=int, default=20)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    args = parser.parse_args(argv)
    result = compare(args.overrides, args.directions)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
