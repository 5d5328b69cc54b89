"""What the device decides: the direction cache, the forwards' autocast, length buckets per forward,
free and peak memory. Each choice changes speed or memory, never results (float32 forwards)."""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

import psutil
import torch

from hiso.schema import RunConfig
from hiso.tracking.records import human_bytes

# The price of one forward, in padded tokens, when grouping a batch by length on CPU: measured on
# a 2-core EPYC with SmolLM2-135M (one extra forward costs about as much as 64 more tokens).
CPU_FORWARD_TOKENS = 64


def free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def direction_cache_decision(
    cfg: RunConfig, uses_directions: bool, num_parameters: int, device: torch.device
) -> tuple[bool, str]:
    """Whether the zeroth-order optimizer keeps a step's P directions (P x d float32 values)
    between perturbing and updating, and why: never for an algorithm without directions;
    algo.direction_cache=on/off as set, or auto: on when they fit in a quarter of the memory free
    now (the GPU's, else the machine's)."""
    a = cfg.algo
    if not uses_directions:
        return False, f"{a.name} is first-order: no directions"
    if a.direction_cache != "auto":
        return a.direction_cache == "on", f"algo.direction_cache={a.direction_cache}"
    need, free = 4 * a.num_perturbations * num_parameters, free_memory_bytes(device)
    on = need <= free // 4
    return on, (
        f"auto: P x d float32 values take {human_bytes(need)}, "
        f"{'within' if on else 'more than'} a quarter of the {human_bytes(free)} free on "
        f"{device.type}"
    )


def direction_threads(cfg: RunConfig, device: torch.device | None) -> int:
    """algo.direction_threads, or automatically torch's threads on CPU and 1 elsewhere."""
    threads = cfg.algo.direction_threads
    if threads is None:
        threads = torch.get_num_threads() if device is not None and device.type == "cpu" else 1
    return threads


def forward_autocast(cfg: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast around forwards when model.forward_dtype asks for it. float32 forwards
    stay float32 on a GPU: cuDNN's default runs convolutions in TF32, whose 10-bit mantissa is
    coarser than the perturbations a finite difference measures."""
    if cfg.model.forward_dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
    return contextlib.nullcontext()


def bucket_policy(setting: str, device: torch.device) -> tuple[int, int]:
    """federation.length_buckets on `device`: (most forwards per evaluated batch, price of one
    forward in tokens). auto groups by length on CPU, where a forward costs about what its padded
    tokens cost, and keeps one forward on a GPU, where a small batch underuses the device; N
    splits into at most N forwards with the least padding."""
    if setting == "off":
        return 1, 0
    if setting == "auto":
        return (8, CPU_FORWARD_TOKENS) if device.type == "cpu" else (1, 0)
    return int(setting), 0


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA allocation, or the peak RSS of this process's address space: VmHWM, which starts
    afresh at exec (ru_maxrss would carry over a large parent's peak into a child process)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
