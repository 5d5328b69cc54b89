"""The per-parameter cost model of scripts/bench.py --costs: the costs of drawing a direction
slice, of one elementwise pass and of a forward per token and dense parameter, and each round
predicted from them (docs/scaling.md extrapolates from these)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hiso.config import compose_config
from hiso.federation.simulator import Simulation
from hiso.optim.directions import DirectionStream

from benchmark.setting import DEFAULT_THREADS, SETTING, Bench, build, model_overrides
from benchmark.timing import Timing, summary_line, time_rounds, timed
from scaling import elementwise_passes  # scripts/scaling.py

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
