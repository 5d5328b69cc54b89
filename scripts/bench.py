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
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# offline switches first: Hugging Face reads them at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from hiso.cli import resolve_device

from benchmark.costs import costs
from benchmark.memory import memory_model, probe_memory
from benchmark.report import costs_markdown, machine, markdown, memory_rows, timing_rows
from benchmark.setting import MODELS, ROOT, Bench
from benchmark.timing import Timing, time_model


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
