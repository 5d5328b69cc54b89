"""Expected round time and memory on GPUs, on paper: the tables of docs/scaling.md.

    python scripts/scaling.py [--costs results/costs/costs.json]

A round (K = 1, P = 5, forward difference, batch 16 per sampled client, direction cache on where
it fits) costs the P + 1 forwards of every sampled client's batch plus P direction draws and the
algorithm's elementwise passes over every parameter (elementwise_passes below). With G GPUs each
holds a replica and evaluates its share of the sampled clients (issue 11: accelerate processes);
the directions and updates are the same work on every GPU, so only the forwards divide by G.
The GPU figures come from NVIDIA's published peaks times the utilisation assumed below; the CPU
line of each model uses this machine's measured costs (`scripts/bench.py --costs`).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
P = 5  # perturbations per step
BATCH = 16  # examples per sampled client
TOKENS = 64  # padded tokens per example in one forward (no length buckets on a GPU)
GPUS = (1, 2, 4, 8)
SAMPLED = (8, 64, 1000)
MFU = 0.4  # share of the bf16 tensor-core peak a forward reaches
BANDWIDTH_SHARE = 0.8  # share of the memory bandwidth an elementwise pass reaches
PASS_BYTES = 12  # an elementwise pass reads two float32 tensors and writes one
DRAW_BYTES = 12  # a Philox normal_ draw, assumed to cost one pass


def elementwise_passes(algo: str, perturbations: int) -> int:
    """Elementwise passes over the parameters in a round with the direction cache on
    (hiso/optim/zo.py): DeComFL P perturbations, P accumulations, zero, divide and step; HiSo also
    rsqrt(H) and the scaling per perturbation, and in the update rsqrt, scaling and four passes
    on H."""
    return {"decomfl": 2 * perturbations + 3, "hiso": 4 * perturbations + 9}[algo]


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_flops: float  # dense tensor-core peak, FLOP/s
    bandwidth: float  # bytes/s
    memory: int  # bytes


# NVIDIA's datasheets: H100 SXM5 (989 TFLOPS bf16 dense, 3.35 TB/s, 80 GB); A100 SXM4 80 GB
# (312 TFLOPS bf16 dense, 2,039 GB/s)
H100 = Gpu("H100 SXM 80 GB", 989e12, 3.35e12, 80 * 10**9)
A100 = Gpu("A100 SXM 80 GB", 312e12, 2.039e12, 80 * 10**9)


@dataclass(frozen=True)
class Model:
    name: str
    parameters: float
    dense: float  # parameters a token's forward multiplies by (all but the input embeddings)
    hidden: int
    ffn: int


# parameter counts of the Hugging Face checkpoints; dense = total - token and position embeddings
MODELS = (
    Model("OPT-125M", 125.2e6, 85.0e6, 768, 3072),
    Model("OPT-350M", 331.2e6, 303.4e6, 1024, 4096),
    Model("OPT-1.3B", 1315.8e6, 1208.6e6, 2048, 8192),
    Model("OPT-2.7B", 2651.6e6, 2517.7e6, 2560, 10240),
    Model("OPT-6.7B", 6658.5e6, 6444.2e6, 4096, 16384),
    Model("OPT-13B", 12853.5e6, 12585.6e6, 5120, 20480),
    Model("LLaMA-3.2-1B", 1235.8e6, 973.1e6, 2048, 8192),
    Model("LLaMA-3.2-3B", 3212.7e6, 2818.7e6, 3072, 8192),
)


def per_gpu_clients(sampled: int, gpus: int) -> int:
    return math.ceil(sampled / gpus)


def forward_seconds(model: Model, clients: int, gpu: Gpu) -> float:
    tokens = (P + 1) * clients * BATCH * TOKENS
    return 2 * model.dense * tokens / (MFU * gpu.bf16_flops)


def direction_seconds(model: Model, algo: str, cache: bool, gpu: Gpu) -> float:
    draws = P if cache else 2 * P  # without the cache the update draws every direction again
    moved = model.parameters * (draws * DRAW_BYTES + elementwise_passes(algo, P) * PASS_BYTES)
    return moved / (BANDWIDTH_SHARE * gpu.bandwidth)


def activation_bytes(model: Model, clients: int) -> float:
    """One concatenated forward's widest moment: the bf16 FFN intermediate (twice: input and
    activation) and about seven hidden-wide streams (float32 residual and normalised input, bf16
    q, k, v, attention output), per token."""
    return clients * BATCH * TOKENS * (2 * 2 * model.ffn + 14 * model.hidden)


def memory_bytes(model: Model, algo: str, clients: int, gpu: Gpu) -> tuple[float, bool, bool]:
    """(bytes per GPU, direction cache on, one forward per client): float32 master and perturbed
    copy, HiSo's H, bf16 weight copies under autocast, the cache when it fits in a quarter of
    the rest (the simulator's auto rule), activations of one concatenated forward, or of one
    client's forward when the concatenation would not fit (federation.concat_clients=false)."""
    fixed = 4 * model.parameters * (3 if algo == "hiso" else 2) + 2 * model.parameters
    concat = activation_bytes(model, clients)
    per_client = fixed + concat > 0.9 * gpu.memory
    total = fixed + activation_bytes(model, 1 if per_client else clients)
    cache = 4 * P * model.parameters <= (gpu.memory - total) / 4
    return total + (4 * P * model.parameters if cache else 0), cache, per_client


def round_seconds(model: Model, algo: str, sampled: int, gpus: int, gpu: Gpu) -> float:
    _, cache, _ = memory_bytes(model, algo, per_gpu_clients(sampled, gpus), gpu)
    forwards = forward_seconds(model, per_gpu_clients(sampled, gpus), gpu)
    return forwards + direction_seconds(model, algo, cache, gpu)


def fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.3g} s"


def time_table(algo: str, gpu: Gpu) -> list[str]:
    head = " | ".join(f"{n} sampled, {g} GPU{'s' if g > 1 else ''}" for n in SAMPLED for g in GPUS)
    lines = [f"| model | {head} |", "|---" * (1 + len(SAMPLED) * len(GPUS)) + "|"]
    for m in MODELS:
        cells = [
            "does not fit"
            if memory_bytes(m, algo, per_gpu_clients(n, g), gpu)[0] > gpu.memory
            else fmt_seconds(round_seconds(m, algo, n, g, gpu))
            for n in SAMPLED
            for g in GPUS
        ]
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    return lines


def memory_table(gpu: Gpu) -> list[str]:
    columns = [(a, n) for a in ("decomfl", "hiso") for n in (8, 64, 125, 1000)]
    head = " | ".join(f"{a}, {n} clients per GPU" for a, n in columns)
    lines = [f"| model | {head} |", "|---" * (1 + len(columns)) + "|"]
    for m in MODELS:
        cells = []
        for algo, n in columns:
            total, cache, per_client = memory_bytes(m, algo, n, gpu)
            marks = ("c" if cache else "") + ("p" if per_client else "")
            over = " (> 80 GB)" if total > gpu.memory else ""
            cells.append(f"{total / GIB:.1f} GiB{' ' + marks if marks else ''}{over}")
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    return lines


def cpu_table(unit: dict[str, float]) -> list[str]:
    """The same round on this machine's measured costs (scripts/bench.py --costs), 8 sampled."""
    per_token = unit["forward_s_per_token_parameter"]
    lines = [
        "This CPU, one thread (measured costs), 8 sampled clients:",
        "",
        "| model | forwards | directions, DeComFL | directions, HiSo |",
        "|---|---|---|---|",
    ]
    for m in MODELS[:3]:
        forwards = (P + 1) * 8 * BATCH * TOKENS * m.dense * per_token
        rest = [
            m.parameters
            * (P * unit["draw_s_per_float"] + elementwise_passes(a, P) * unit["pass_s_per_float"])
            for a in ("decomfl", "hiso")
        ]
        lines.append(
            f"| {m.name} | {fmt_seconds(forwards)} | {fmt_seconds(rest[0])} "
            f"| {fmt_seconds(rest[1])} |"
        )
    return lines


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--costs", type=Path, default=ROOT / "results" / "costs" / "costs.json")
    args = parser.parse_args(argv)
    lines = [f"HiSo round time on {H100.name} (bf16 autocast):", "", *time_table("hiso", H100)]
    lines += ["", f"DeComFL round time on {H100.name}:", "", *time_table("decomfl", H100)]
    lines += ["", f"HiSo round time on {A100.name}:", "", *time_table("hiso", A100)]
    lines += [
        "",
        "Memory per GPU (c: direction cache on; p: one forward per client, "
        "federation.concat_clients=false):",
        "",
        *memory_table(H100),
    ]
    if args.costs.is_file():
        lines += ["", *cpu_table(json.loads(args.costs.read_text())["unit"])]
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
