"""Speed and memory of hiso-run's round: against the bare forwards it needs and against a naive
MeZO-style loop, at the papers' setting (K = 1, P = 5, forward difference, batch 16, 8 clients).

    python scripts/bench.py [--models smollm2,opt125m-shape,opt1.3b-shape,cnn] [--rounds N]
                            [--quick] [--out DIR] [--gpu [--check]] [--costs] [OVERRIDES...]

OVERRIDES are Hydra overrides applied to every configuration after the benchmark's own (so they
win), e.g. model.forward_dtype=bfloat16.

Round times are medians over timed rounds after warm-up of the real `Simulation.run_round`.
Peak memory is measured per configuration in a fresh subprocess (RSS high-water mark on CPU,
torch.cuda.max_memory_allocated on GPU). opt125m-shape is a randomly initialised OPTForCausalLM
with OPT-125m's shapes, run on the SmolLM2 movie-review task (SmolLM2's tokenizer: 49,152 ids fit
OPT's 50,272-row embedding), so its batches have exactly SmolLM2's token shapes; opt1.3b-shape
likewise with OPT-1.3b's (for a GPU: about 5 GiB per float32 copy).

--gpu (`make gpu-check`) insists on a CUDA device, exiting with one line without one (--check:
only that), and writes to results/gpu-<card>/ unless --out says otherwise.

--costs measures the per-parameter costs docs/scaling.md extrapolates from (drawing a direction
slice, one elementwise pass, a forward per token and parameter outside the embeddings) and checks
them against real rounds: the first model calibrates the forward cost, every model's DeComFL and
HiSo rounds are predicted from the three costs and its own padded tokens (costs.md, costs.json).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# offline switches first: Hugging Face reads them at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from torch import nn
from transformers import OPTConfig, OPTForCausalLM

from hiso.cli import resolve_device
from hiso.config import compose_config
from hiso.federation.device import forward_autocast, peak_memory_bytes
from hiso.federation.server import sample_clients
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.models.hf import load_tokenizer
from hiso.optim.directions import DirectionStream
from hiso.seeding import derive_seed
from hiso.tasks import build_task
from hiso.tasks.base import Task

from scaling import elementwise_passes  # beside this script

ROOT = Path(__file__).resolve().parents[1]
# the papers' setting; the sampled count and the client count vary per measurement
SETTING = (
    "federation.local_steps=1",
    "algo.num_perturbations=5",
    "algo.difference=forward",
    "optim.batch_size=16",
    "federation.rounds=1000000",
    "federation.eval_every=0",
    "logger=none",
)
LM_TASK = ("model=smollm2-135m", "dataset=movie-reviews")
QUICK_DATA = ("dataset.max_train=512", "dataset.max_test=64")
OPT_125M_SHAPE = {
    "hidden_size": 768,
    "word_embed_proj_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "ffn_dim": 3072,
    "vocab_size": 50272,
    "max_position_embeddings": 2048,
}
OPT_1_3B_SHAPE = OPT_125M_SHAPE | {
    "hidden_size": 2048,
    "word_embed_proj_dim": 2048,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "ffn_dim": 8192,
}
OPT_SHAPES = {"opt125m-shape": OPT_125M_SHAPE, "opt1.3b-shape": OPT_1_3B_SHAPE}
MODELS = ("smollm2", *OPT_SHAPES, "cnn")
OPT_TINY_SHAPE = {
    "hidden_size": 64,
    "word_embed_proj_dim": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "ffn_dim": 128,
    "vocab_size": 50272,
    "max_position_embeddings": 2048,
}
FEW_LARGEST = 3  # "a few of the largest tensor" in HiSo's memory bound
MIB = 2**20
DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class Bench:
    """What one run measures (the defaults are the full benchmark; `quick` shrinks everything)."""

    rounds: int
    warmup: int
    sampled: tuple[int, ...]
    clients: tuple[int, int] = (8, 64)
    quick: bool = False
    overrides: tuple[str, ...] = ()


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


def model_overrides(name: str, quick: bool) -> tuple[str, ...]:
    if name == "cnn":
        return ("+experiment=digits",)
    return LM_TASK + (QUICK_DATA if quick else ())


def opt_shaped_model(shape: dict[str, int], tokenizer: Any, seed: int) -> OPTForCausalLM:
    """A float32 OPTForCausalLM of `shape`, seeded initialisation (the global RNG is kept)."""
    config = OPTConfig(
        **shape,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "opt125m-shape"))
        return OPTForCausalLM(config).eval()


def build(name: str, cfg: Any, device: torch.device, quick: bool) -> tuple[nn.Module, Task]:
    """The model and task of a benchmark entry (quick: a tiny OPT in place of both LMs)."""
    if name == "cnn" or (name == "smollm2" and not quick):
        model, tokenizer = build_model(cfg.model, device, cfg.seed)
        return model, build_task(cfg, tokenizer)
    tokenizer = load_tokenizer(cfg.model)
    shape = OPT_TINY_SHAPE if quick else OPT_SHAPES[name]
    return opt_shaped_model(shape, tokenizer, cfg.seed).to(device), build_task(cfg, tokenizer)


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
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", name, algo, str(num_clients)]
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


COST_FLOATS = 2**24  # one slice of 16.8M floats, the size of a large embedding matrix


def per_float_seconds(work: Callable[[], object], device: torch.device) -> float:
    """Median seconds per float of `work` over COST_FLOATS floats (first call: warm-up)."""
    times: list[float] = []
    for _ in range(6):
        with timed(times, device):
            work()
    return statistics.median(times[1:]) / COST_FLOATS


def element_costs(device: torch.device) -> dict[str, float]:
    """Seconds per float of drawing a direction slice (hiso's DirectionStream) and of one
    elementwise pass (out = x + mu u, the perturbation's form)."""
    stream = DirectionStream([torch.Size([COST_FLOATS])], device, [0])
    x, out = torch.zeros(COST_FLOATS, device=device), torch.empty(COST_FLOATS, device=device)
    u = stream.gaussian(0, 0, 0).clone()
    return {
        "draw_s_per_float": per_float_seconds(lambda: stream.gaussian(0, 0, 0), device),
        "pass_s_per_float": per_float_seconds(lambda: torch.add(x, u, alpha=1e-3, out=out), device),
    }


def dense_parameters(model: nn.Module) -> int:
    """Parameters a token's forward multiplies by: all but the input embeddings (the LM head
    runs on the last position only)."""
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding


def cost_model(name: str, bench: Bench, device: torch.device) -> list[dict[str, Any]]:
    """One model's DeComFL and HiSo rounds (2 sampled, cache on), timed with their forwards."""
    base = (*model_overrides(name, bench.quick), *SETTING, "federation.num_clients=8")
    cfg = compose_config([*base, *bench.overrides])
    torch.set_num_threads(cfg.threads or DEFAULT_THREADS)
    model, task = build(name, cfg, device, bench.quick)
    rows = []
    for algo in ("decomfl", "hiso"):
        chosen = (f"algo={algo}", "federation.clients_per_round=2", "algo.direction_cache=on")
        cfg = compose_config([*base, *chosen, *bench.overrides])
        sim = Simulation(cfg, model, task, device)
        timing = Timing(name, algo, 2, "on", "auto")
        time_rounds(sim, timing, bench, forwards=True, naive=False)
        rows.append(
            {
                "model": name,
                "algo": algo,
                "parameters": sim.num_parameters,
                "dense_parameters": dense_parameters(model),
                "perturbations": cfg.algo.num_perturbations,
                "tokens": statistics.median(timing.tokens),
                "round_s": statistics.median(timing.round_s),
                "forwards_s": statistics.median(timing.forwards_s),
            }
        )
        print(summary_line(timing), flush=True)
    return rows


def costs(names: list[str], bench: Bench, device: torch.device) -> dict[str, Any]:
    """Element costs, the forward cost per token and dense parameter calibrated on the first
    model, and every round predicted from them."""
    unit = element_costs(device)
    rows = [row for name in names for row in cost_model(name, bench, device)]
    return predict(unit, rows)


def predict(unit: dict[str, float], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Calibrate the forward's cost per token and dense parameter on the first row (its P + 1
    evaluations of its padded tokens), then predict each row's forwards, the rest of its round
    (P draws and the algorithm's elementwise passes over every parameter) and the round."""
    first = rows[0]
    unit = unit | {
        "forward_s_per_token_parameter": first["forwards_s"]
        / ((first["perturbations"] + 1) * first["tokens"] * first["dense_parameters"])
    }
    for row in rows:
        p, d = row["perturbations"], row["parameters"]
        per_token = unit["forward_s_per_token_parameter"]
        row["forwards_predicted_s"] = (p + 1) * row["tokens"] * row["dense_parameters"] * per_token
        row["rest_s"] = row["round_s"] - row["forwards_s"]
        row["rest_predicted_s"] = d * (
            p * unit["draw_s_per_float"]
            + elementwise_passes(row["algo"], p) * unit["pass_s_per_float"]
        )
        row["round_predicted_s"] = row["forwards_predicted_s"] + row["rest_predicted_s"]
    return {"unit": unit, "rounds": rows}


def costs_markdown(result: dict[str, Any]) -> str:
    m, u = result["machine"], result["unit"]
    lines = [
        "# Per-parameter costs (scripts/bench.py --costs)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({result['threads']} threads), device {m['device']}"
        + (f" ({m['gpu']})" if m["gpu"] else "")
        + f"; load average {result['load_before']} before, {m['load_average']} after.",
        "",
        f"- direction draw: {u['draw_s_per_float'] * 1e12:.2f} ps per float",
        f"- elementwise pass (out = x + mu u): {u['pass_s_per_float'] * 1e12:.2f} ps per float",
        f"- forward: {u['forward_s_per_token_parameter'] * 1e12:.3f} ps per token and dense "
        f"parameter ({2 / u['forward_s_per_token_parameter'] / 1e9:.1f} GFLOP/s at 2 FLOPs "
        "each), calibrated on the first model below",
        "",
        "Rounds (K = 1, P = 5, forward difference, batch 16, 2 of 8 clients, direction cache on; "
        f"{result['timed']}): measured against predicted from the three costs. forwards: the "
        "P + 1 evaluations alone; rest: round minus forwards (directions, updates, bookkeeping).",
        "",
        "| model | algorithm | parameters | dense | padded tokens | forwards s | predicted "
        "| rest s | predicted | round s | predicted |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        lines.append(
            f"| {r['model']} | {r['algo']} | {r['parameters'] / 1e6:.1f}M "
            f"| {r['dense_parameters'] / 1e6:.1f}M | {r['tokens']:.0f} | {r['forwards_s']:.2f} "
            f"| {r['forwards_predicted_s']:.2f} | {r['rest_s']:.2f} | {r['rest_predicted_s']:.2f} "
            f"| {r['round_s']:.2f} | {r['round_predicted_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": DEFAULT_THREADS,
        "torch": torch.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average": list(os.getloadavg()),
    }


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summary_line(t: Timing) -> str:
    parts = [f"{t.model} {t.algo} sampled={t.sampled} cache={t.cache} buckets={t.buckets}:"]
    for label, values in (("round", t.round_s), ("forwards", t.forwards_s), ("naive", t.naive_s)):
        if values:
            parts.append(f"{label} {statistics.median(values):.3f} s")
    return " ".join(parts)


def timing_rows(timings: list[Timing]) -> list[dict[str, Any]]:
    """One row per configuration; forwards come from the configuration of the same model, sampled
    count and buckets that measured them, naive from that of the same model and sampled count."""
    forwards = {(t.model, t.sampled, t.buckets): t.forwards_s for t in timings if t.forwards_s}
    naive_s = {(t.model, t.sampled): t.naive_s for t in timings if t.naive_s}
    rows = []
    for t in timings:
        rnd = stats(t.round_s)
        fwd = stats(forwards[(t.model, t.sampled, t.buckets)])
        naive = stats(naive_s[(t.model, t.sampled)])
        assert rnd is not None and fwd is not None and naive is not None
        rows.append(
            {
                **{k: v for k, v in asdict(t).items() if not k.endswith("_s")},
                "round_s": rnd,
                "forwards_s": fwd,
                "naive_s": naive,
                "round_over_forwards": rnd["median"] / fwd["median"],
                "naive_over_round": naive["median"] / rnd["median"],
                "raw": {k: v for k, v in asdict(t).items() if k.endswith("_s")},
            }
        )
    return rows


def memory_rows(probes: list[dict[str, Any]], clients: tuple[int, int]) -> list[dict[str, Any]]:
    """Per model and algorithm: peak with few and many clients; HiSo against DeComFL's bound."""
    peak = {(p["model"], p["algo"], p["num_clients"]): p for p in probes}
    rows = []
    for model in dict.fromkeys(p["model"] for p in probes):
        for algo in ("decomfl", "hiso"):
            few, many = peak[(model, algo, clients[0])], peak[(model, algo, clients[1])]
            row = {
                "model": model,
                "algo": algo,
                f"peak_{clients[0]}_bytes": few["peak_bytes"],
                f"peak_{clients[1]}_bytes": many["peak_bytes"],
                "many_over_few": many["peak_bytes"] / few["peak_bytes"],
            }
            if algo == "hiso":
                base = peak[(model, "decomfl", clients[0])]
                row["over_decomfl_bytes"] = few["peak_bytes"] - base["peak_bytes"]
                row["bound_bytes"] = 4 * (
                    few["num_parameters"] + FEW_LARGEST * few["largest_tensor"]
                )
            rows.append(row)
    return rows


def fmt_stats(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}]"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    few, many = result["clients"]
    lines = [
        "# hiso-run benchmark",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} "
        f"threads), device {m['device']}"
        + (f" ({m['gpu']})" if m["gpu"] else "")
        + f"; load average {result['load_before']} before, {m['load_average']} after.",
        "",
        f"Setting: K = 1, P = 5, forward difference, batch 16, 8 clients; "
        f"warm-up and timed rounds per configuration {result['rounds']}, "
        "seconds as median [min, max]. forwards: the P + 1 evaluations of the sampled clients' "
        "batches (concatenated, in the round's length buckets), alone; naive: the MeZO-style "
        "loop in scripts/bench.py on the same batches (each client's batch padded to its "
        "longest example, one forward).",
        "",
        "| model | algorithm | sampled | cache | buckets | round s | forwards s | round/forwards "
        "| naive s | naive/round |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["timing"]:
        lines.append(
            f"| {r['model']} | {r['algo']} | {r['sampled']} | {r['cache']} | {r['buckets']} "
            f"| {fmt_stats(r['round_s'])} | {r['forwards_s']['median']:.3f} "
            f"| {r['round_over_forwards']:.2f} | {r['naive_s']['median']:.3f} "
            f"| {r['naive_over_round']:.2f} |"
        )
    if result["memory"]:
        device_kind = "RSS high-water mark" if m["device"] == "cpu" else "max allocated"
        lines += [
            "",
            f"Peak memory ({device_kind}, MiB; one round, 2 sampled, direction cache off, "
            f"fresh process each). Bound: HiSo may exceed DeComFL by one float32 copy of the "
            f"parameters plus {FEW_LARGEST} of the largest tensor.",
            "",
            f"| model | algorithm | {few} clients | {many} clients | {many}/{few} "
            "| over DeComFL | bound |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["memory"]:
            extra = (
                f"{r['over_decomfl_bytes'] / MIB:.1f} | {r['bound_bytes'] / MIB:.1f}"
                if r["algo"] == "hiso"
                else "| "
            )
            lines.append(
                f"| {r['model']} | {r['algo']} | {r[f'peak_{few}_bytes'] / MIB:.1f} "
                f"| {r[f'peak_{many}_bytes'] / MIB:.1f} | {r['many_over_few']:.3f} | {extra} |"
            )
    return "\n".join(lines) + "\n"


def require_cuda() -> str:
    """The CUDA card's name; exits with one line saying why there is none."""
    if torch.version.cuda is None:
        raise SystemExit(
            f"bench: --gpu needs a CUDA device; this torch ({torch.__version__}) is a CPU build"
        )
    if not torch.cuda.is_available():
        raise SystemExit(
            f"bench: --gpu needs a CUDA device; torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}) sees none (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})"
        )
    return torch.cuda.get_device_name(0)


def card_folder(card: str) -> Path:
    """results/gpu-<card name in lower case, runs of other characters as one dash>/."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in card.lower()).split())
    return ROOT / "results" / f"gpu-{slug}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2,opt125m-shape,cnn")
    parser.add_argument("--rounds", type=int, help="LM timed rounds (default 5; CNN: 10x)")
    parser.add_argument("--warmup", type=int, default=1, help="LM warm-up rounds")
    parser.add_argument("--sampled", default="2,4", help="LM sampled counts, comma-separated")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--jobs", type=int, default=1, help="memory subprocesses at a time")
    parser.add_argument("--quick", action="store_true", help="tiny settings for the smoke test")
    parser.add_argument("--out", type=Path, help="default: results/ (--gpu: results/gpu-<card>/)")
    parser.add_argument("--gpu", action="store_true", help="on CUDA only (one line without it)")
    parser.add_argument("--check", action="store_true", help="with --gpu: only check for CUDA")
    parser.add_argument("--costs", action="store_true", help="per-parameter costs (scaling.md)")
    parser.add_argument(
        "--probe", nargs=3, metavar=("MODEL", "ALGO", "CLIENTS"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every configuration (key=value)"
    )
    return parser.parse_args(argv)


def bench_for(name: str, args: argparse.Namespace) -> Bench:
    """The flags set the language models' settings; the CNN runs 10x the rounds, 5 warm-up
    rounds and 2, 4 and 8 sampled clients."""
    rounds = args.rounds or (2 if args.quick else 5)
    if name == "cnn":
        return Bench(
            10 * rounds,
            1 if args.quick else 5,
            (2, 4) if args.quick else (2, 4, 8),
            quick=args.quick,
            overrides=tuple(args.overrides),
        )
    return Bench(
        rounds,
        args.warmup,
        tuple(int(s) for s in args.sampled.split(",")),
        quick=args.quick,
        overrides=tuple(args.overrides),
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.probe:
        name, algo, clients = args.probe
        print(json.dumps(probe_memory(name, algo, int(clients), args.quick, args.overrides)))
        return {}
    card = require_cuda() if args.gpu else None
    if args.check:
        print(f"bench: CUDA device {card or 'not required'}")
        return {}
    out = args.out or (card_folder(card) if card else ROOT / "results")
    device = resolve_device("auto")
    names = args.models.split(",")
    unknown = set(names) - set(MODELS)
    if unknown:
        raise SystemExit(f"--models: unknown {sorted(unknown)}; use {', '.join(MODELS)}")
    load_before = list(os.getloadavg())
    given = sys.argv[1:] if argv is None else list(argv)
    if args.costs:
        if "cnn" in names:
            raise SystemExit(f"--costs: language models only ({', '.join(MODELS[:-1])})")
        found = costs(names, bench_for(names[0], args), device)
        found |= {
            "command": " ".join(["python scripts/bench.py", *given]),
            "machine": machine(device),
            "threads": torch.get_num_threads(),
            "load_before": load_before,
            "timed": f"{args.warmup} warm-up + {args.rounds or 5} timed rounds each",
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "costs.json").write_text(json.dumps(found, indent=2) + "\n")
        (out / "costs.md").write_text(costs_markdown(found))
        print(costs_markdown(found))
        return found
    benches = {name: bench_for(name, args) for name in names}
    timings: list[Timing] = []
    probes: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    for name in names:  # results are rewritten after each model, so a cut-short run keeps them
        timings += time_model(name, benches[name], device, print)
        if not args.no_memory:
            probes += memory_model(name, benches[name], args.jobs)
        clients = benches[name].clients
        result = {
            "command": " ".join(["python scripts/bench.py", *given]),
            "machine": machine(device),
            "load_before": load_before,
            "rounds": ", ".join(f"{n}: {b.warmup} + {b.rounds}" for n, b in benches.items()),
            "clients": clients,
            "timing": timing_rows(timings),
            "memory": memory_rows(probes, clients),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "bench.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
