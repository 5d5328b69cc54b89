"""Timing of scripts/bench.py: the real round against the bare forwards it needs and against a
naive MeZO-style loop on the same batches, per configuration of one model."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hiso.config import compose_config
from hiso.federation.device import forward_autocast
from hiso.federation.server import sample_clients
from hiso.federation.simulator import Simulation
from hiso.seeding import derive_seed
from hiso.tasks.base import Task

from benchmark.setting import DEFAULT_THREADS, SETTING, Bench, build, model_overrides


@dataclass
class Timing:
    """Seconds per timed round of one configuration; forwards in the DeComFL cache-on
    configurations (at their own forward shapes), naive once per model and sampled count."""

    model: str
    algo: str
    sampled: int
    cache: str
    buckets: str
    round_s: list[float] = field(default_factory=list)
    forwards_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    # padded tokens of one evaluation of the timed rounds' batches (language models, with forwards)
    tokens: list[int] = field(default_factory=list)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(out: list[float], device: torch.device) -> Iterator[None]:
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    out.append(time.perf_counter() - start)


def next_batches(sim: Simulation, rnd: int) -> list[list[int]]:
    """The batch each client sampled in round `rnd` will draw (K = 1), leaving the clients as
    they are."""
    f = sim.cfg.federation
    ids = sample_clients(sim.cfg.seed, rnd, f.num_clients, f.clients_per_round)
    return [copy.deepcopy(sim.clients[i]).next_batch(sim.cfg.optim.batch_size) for i in ids]


def bare_forwards(sim: Simulation, batches: list[list[int]]) -> None:
    """The P + 1 evaluations of a forward-difference round, alone: the simulator's own loss
    function, so the same concatenated batch in the same length buckets."""
    losses = sim.forwards.client_losses(batches)
    for _ in range(sim.cfg.algo.num_perturbations + 1):
        losses()


def naive_round(
    model: nn.Module,
    task: Task,
    cfg: Any,
    batches: Sequence[list[int]],
    seed: int,
    device: torch.device,
) -> None:
    """A MeZO-style forward-difference round: per client, per direction, perturb in place with a
    freshly drawn direction, forward, restore by drawing it again; the server's update draws every
    direction once more; out-of-place adds; one extra forward per client for the logged loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    num_dirs, mu, lr = cfg.algo.num_perturbations, cfg.algo.mu, cfg.optim.lr
    seeds = [derive_seed(seed, "naive", p) for p in range(num_dirs)]
    gen = torch.Generator(device=device)

    def add_direction(direction_seed: int, scale: float) -> None:
        gen.manual_seed(direction_seed)
        for p in params:
            z = torch.randn(p.shape, generator=gen, device=device, dtype=p.dtype)
            p.data = p.data + scale * z

    def loss(batch: dict[str, torch.Tensor]) -> float:
        with torch.no_grad(), forward_autocast(cfg, device):
            return float(task.loss(model, batch).mean())

    scalars = np.zeros((len(batches), num_dirs))
    for c, indices in enumerate(batches):
        batch = task.batch(indices, device)
        f0 = loss(batch)
        for p, direction_seed in enumerate(seeds):
            add_direction(direction_seed, mu)
            scalars[c, p] = (loss(batch) - f0) / mu
            add_direction(direction_seed, -mu)
        loss(batch)
    for p, direction_seed in enumerate(seeds):
        add_direction(direction_seed, -lr * float(scalars[:, p].mean()) / num_dirs)


def time_rounds(sim: Simulation, timing: Timing, bench: Bench, forwards: bool, naive: bool) -> None:
    """Run warm-up and timed rounds of `sim`, appending round (and optionally bare-forward and
    naive-loop) seconds of the timed ones; all three see the same batches each round."""
    for rnd in range(bench.warmup + bench.rounds):
        keep = rnd >= bench.warmup
        batches = next_batches(sim, rnd)
        if forwards:
            with timed(timing.forwards_s if keep else [], sim.device):
                bare_forwards(sim, batches)
            if keep and sim.task.lengths(batches[0]) is not None:
                plan = sim.forwards.forwards([i for b in batches for i in b])
                timing.tokens.append(sum(int(b["input_ids"].numel()) for _, b in plan))
        with timed(timing.round_s if keep else [], sim.device):
            sim.run_round(rnd)
        sim.wire.close_round()
        if naive:
            with timed(timing.naive_s if keep else [], sim.device):
                naive_round(sim.model, sim.task, sim.cfg, batches, rnd, sim.device)


def timing_plan(bench: Bench) -> Iterator[tuple[str, int, str, str]]:
    """(algo, sampled, cache, buckets) for one model: at the first sampled count the cache on
    and off and DeComFL without length buckets, at the others the cache on."""
    for n, sampled in enumerate(bench.sampled):
        caches = ("on", "off") if n == 0 else ("on",)
        for algo in ("decomfl", "hiso"):
            for cache in caches:
                yield algo, sampled, cache, "auto"
        if n == 0:
            yield "decomfl", sampled, "on", "off"


def time_model(
    name: str, bench: Bench, device: torch.device, log: Callable[[str], None]
) -> list[Timing]:
    """Every configuration of `timing_plan` on one model and task, built once and shared."""
    base = model_overrides(name, bench.quick)
    cfg = compose_config([*base, *SETTING, "federation.num_clients=8", *bench.overrides])
    torch.set_num_threads(cfg.threads or DEFAULT_THREADS)
    model, task = build(name, cfg, device, bench.quick)
    timings = []
    for algo, sampled, cache, buckets in timing_plan(bench):
        cfg = compose_config(
            [
                *base,
                *SETTING,
                "federation.num_clients=8",
                f"algo={algo}",
                f"federation.clients_per_round={sampled}",
                f"algo.direction_cache={cache}",
                f"federation.length_buckets={buckets}",
                *bench.overrides,
            ]
        )
        sim = Simulation(cfg, model, task, device)
        timing = Timing(name, algo, sampled, cache, buckets)
        forwards = algo == "decomfl" and cache == "on"
        time_rounds(sim, timing, bench, forwards, naive=forwards and buckets == "auto")
        timings.append(timing)
        log(summary_line(timing))
        del sim
    return timings


def summary_line(t: Timing) -> str:
    parts = [f"{t.model} {t.algo} sampled={t.sampled} cache={t.cache} buckets={t.buckets}:"]
    for label, values in (("round", t.round_s), ("forwards", t.forwards_s), ("naive", t.naive_s)):
        if values:
            parts.append(f"{label} {statistics.median(values):.3f} s")
    return " ".join(parts)
