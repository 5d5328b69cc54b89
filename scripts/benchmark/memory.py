"""Peak memory of one round for scripts/bench.py, each configuration probed in a fresh process
(`scripts/bench.py --probe`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from hiso.cli import resolve_device
from hiso.config import compose_config
from hiso.federation.device import peak_memory_bytes
from hiso.federation.simulator import Simulation

from benchmark.setting import DEFAULT_THREADS, ROOT, SETTING, Bench, build, model_overrides

BENCH = ROOT / "scripts" / "bench.py"  # its hidden --probe runs probe_memory


def probe_memory(
    name: str, algo: str, num_clients: int, quick: bool, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Peak memory of one round (8 or 64 clients, 2 sampled, cache off) in this process."""
    device = resolve_device("auto")
    cfg = compose_config(
        [
            *model_overrides(name, quick),
            *SETTING,
            f"algo={algo}",
            f"federation.num_clients={num_clients}",
            "federation.clients_per_round=2",
            "algo.direction_cache=off",
            *extra,
        ]
    )
    torch.set_num_threads(cfg.threads or DEFAULT_THREADS)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, task = build(name, cfg, device, quick)
    sim = Simulation(cfg, model, task, device)
    sim.run_round(0)
    return {
        "model": name,
        "algo": algo,
        "num_clients": num_clients,
        "peak_bytes": peak_memory_bytes(device),
        "num_parameters": sim.num_parameters,
        "largest_tensor": max(x.numel() for x in sim.master),
    }


def memory_in_subprocess(name: str, algo: str, num_clients: int, bench: Bench) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH), "--probe", name, algo, str(num_clients)]
    done = subprocess.run(
        [*cmd, *(["--quick"] if bench.quick else []), *bench.overrides],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_model(name: str, bench: Bench, jobs: int) -> list[dict[str, Any]]:
    """The peak memory of DeComFL and HiSo with each client count, one fresh process each."""
    plan = [(a, n) for a in ("decomfl", "hiso") for n in bench.clients]
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda an: memory_in_subprocess(name, *an, bench), plan))
