"""scripts/bench.py's results as rows (bench.json, costs.json) and markdown (bench.md,
costs.md), with the machine they were measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmark.setting import DEFAULT_THREADS
from benchmark.timing import Timing

FEW_LARGEST = 3  # "a few of the largest tensor" in HiSo's memory bound
MIB = 2**20


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
