"""Smoke tests of scripts/bench.py and its pieces (scripts/benchmark/) on the digits CNN and a
tiny random OPT, and of scripts/precision.py on a tiny random LLaMA, and of
scripts/bench_seed_pool.py."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hiso.config import compose_config
from hiso.tasks.templates import TEMPLATES
from hiso.tasks.text import LabelWordTask

import lm_fixtures
from configs import CPU, digits_simulation, import_script_module, load_script
from lm_fixtures import OPT_SPECIAL, make_tokenizer

# scripts/benchmark/'s modules, the ones scripts/bench.py imports
setting = import_script_module("benchmark.setting")
timing = import_script_module("benchmark.timing")
memory = import_script_module("benchmark.memory")
costs = import_script_module("benchmark.costs")
report = import_script_module("benchmark.report")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench")


def test_next_batches_predicts_the_round_without_consuming_it() -> None:
    sim = digits_simulation("federation.clients_per_round=3")
    clients = copy.deepcopy(sim.clients)
    predicted = timing.next_batches(sim, 0)
    assert [c.cursor for c in sim.clients] == [c.cursor for c in clients]
    sim.run_round(0)
    moved = [c for c, before in zip(sim.clients, clients, strict=True) if c.cursor != before.cursor]
    drawn = [clients[c.id].next_batch(sim.cfg.optim.batch_size) for c in moved]
    assert drawn == predicted


def test_time_rounds_pairs_round_forwards_and_naive() -> None:
    sim = digits_simulation()
    measured = timing.Timing("cnn", "hiso", 2, "on", "auto")
    timing.time_rounds(sim, measured, setting.Bench(rounds=2, warmup=1, sampled=(2,)), True, True)
    assert len(measured.round_s) == len(measured.forwards_s) == len(measured.naive_s) == 2
    row = report.timing_rows([measured])[0]
    assert row["round_over_forwards"] > 0 and row["naive_over_round"] > 0


def test_naive_round_moves_a_tiny_opt_by_a_small_step() -> None:
    tokenizer = make_tokenizer(OPT_SPECIAL)
    shape = {**setting.OPT_TINY_SHAPE, "hidden_size": 16, "word_embed_proj_dim": 16, "ffn_dim": 32}
    model = setting.opt_shaped_model(shape, tokenizer, seed=0)
    assert model.get_input_embeddings().weight.shape[0] == setting.OPT_TINY_SHAPE["vocab_size"]
    examples = [{"sentence": f"a fine film number {i}", "label": i % 2} for i in range(8)]
    task = LabelWordTask(TEMPLATES["sst2"], tokenizer, examples, {"test": examples}, 32, 8)
    cfg = compose_config(["model=opt-125m", "dataset=movie-reviews", *setting.SETTING])
    before = [p.detach().clone() for p in model.parameters()]
    timing.naive_round(model, task, cfg, [[0, 1, 2], [3, 4, 5]], 0, CPU)
    change = max(
        float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True)
    )
    assert 0 < change < 1e-2


def test_memory_rows_and_markdown() -> None:
    probes = [
        memory.probe_memory("cnn", algo, n, quick=True)
        for algo in ("decomfl", "hiso")
        for n in (8, 64)
    ]
    rows = report.memory_rows(probes, (8, 64))
    assert [r["algo"] for r in rows] == ["decomfl", "hiso"]
    assert all(np.isfinite(r["many_over_few"]) for r in rows)
    measured = timing.Timing("cnn", "decomfl", 2, "on", "auto", [0.2, 0.1], [0.1], [0.4])
    result = {
        "command": "python scripts/bench.py --quick",
        "machine": report.machine(CPU),
        "load_before": [0.0, 0.0, 0.0],
        "rounds": "cnn: 1 + 2",
        "clients": (8, 64),
        "timing": report.timing_rows([measured]),
        "memory": rows,
    }
    text = report.markdown(result)
    assert (
        "| cnn | decomfl | 2 | on | auto | 0.150 [0.100, 0.200] | 0.100 | 1.50 | 0.400 | 2.67 |"
        in text
    )
    assert text.count("| cnn |") == 3


def test_main_writes_markdown_and_json_for_every_configuration(
    bench: ModuleType, tmp_path: Path
) -> None:
    argv = ["--quick", "--models", "cnn", "--no-memory", "--out", str(tmp_path), "algo.mu=0.002"]
    assert bench.bench_for("cnn", bench.parse_args(argv)).overrides == ("algo.mu=0.002",)
    result = bench.main(argv)
    assert result["command"].endswith("algo.mu=0.002")
    configs = [(r["algo"], r["sampled"], r["cache"], r["buckets"]) for r in result["timing"]]
    assert configs[:5] == [
        ("decomfl", 2, "on", "auto"),
        ("decomfl", 2, "off", "auto"),
        ("hiso", 2, "on", "auto"),
        ("hiso", 2, "off", "auto"),
        ("decomfl", 2, "on", "off"),
    ]
    assert configs[5:] == [("decomfl", 4, "on", "auto"), ("hiso", 4, "on", "auto")]
    assert (tmp_path / "bench.json").is_file()
    assert (tmp_path / "bench.md").read_text().count("| cnn |") == len(configs)


def test_precision_compares_float32_and_bfloat16_scalars(tmp_path: Path) -> None:
    precision = load_script("precision")
    model, tokenizer = lm_fixtures.tiny_llama()
    checkpoint = lm_fixtures.save_checkpoint(model, tokenizer, tmp_path / "tiny")
    overrides = [
        f"model.path={checkpoint}",
        "model.name=tiny",
        "dataset.max_train=64",
        "dataset.max_test=8",
        "algo.mu=0.05",
    ]
    result = precision.main(["--directions", "6", *overrides])
    assert set(result["seconds"]) == {"float32", "bfloat16"}
    assert 0.0 < result["relative_error"] < 1.0  # bfloat16 rounds, but the scalars still track
    assert result["correlation"] > 0.5 and 0.0 <= result["sign_agreement"] <= 1.0


def without(env: Mapping[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


def test_gpu_check_stops_at_one_line_without_cuda(tmp_path: Path) -> None:
    """`make gpu-check` (setup's products given as existing files, the venv running this test)
    with CUDA hidden: the benchmark's check says why, and neither the tests nor the benchmark
    start."""
    root = Path(__file__).resolve().parents[1]
    stamp, vader = tmp_path / "installed", tmp_path / "vader.tar.gz"
    stamp.touch()
    vader.touch()
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "gpu-check",
            f"BIN={Path(sys.executable).parent}",
            f"STAMP={stamp}",
            f"VADER={vader}",
        ],
        cwd=root,
        # a top-level make, also when this suite runs under one (`make test`: make[1] otherwise)
        env={**without(os.environ, "MAKELEVEL", "MAKEFLAGS", "MFLAGS"), "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and done.stdout == ""
    ours, made = done.stderr.strip().splitlines()
    assert ours.startswith("bench: --gpu needs a CUDA device; ")
    assert made.startswith("make: *** [Makefile:") and "gpu-check" in made


def test_costs_predict_rounds_from_per_parameter_costs() -> None:
    unit = costs.element_costs(CPU)
    assert 0 < unit["pass_s_per_float"] < 1e-6 and 0 < unit["draw_s_per_float"] < 1e-6
    row = {"perturbations": 5, "parameters": 1000, "dense_parameters": 600, "tokens": 100}
    rows = [
        {**row, "model": "a", "algo": "decomfl", "round_s": 2.0, "forwards_s": 1.2},
        {**row, "model": "b", "algo": "hiso", "round_s": 4.0, "forwards_s": 2.0, "tokens": 150},
    ]
    found = costs.predict({"draw_s_per_float": 1e-4, "pass_s_per_float": 1e-5}, rows)
    per_token = found["unit"]["forward_s_per_token_parameter"]
    assert per_token == pytest.approx(1.2 / (6 * 100 * 600))
    a, b = found["rounds"]
    assert a["forwards_predicted_s"] == pytest.approx(1.2)  # the calibration row
    assert b["forwards_predicted_s"] == pytest.approx(1.8)  # 1.5x its tokens
    # DeComFL: 5 draws and 2 * 5 + 3 passes per parameter; HiSo: 5 draws, 4 * 5 + 9 passes
    assert a["rest_predicted_s"] == pytest.approx(1000 * (5e-4 + 13e-5))
    assert b["rest_predicted_s"] == pytest.approx(1000 * (5e-4 + 29e-5))
    assert b["rest_s"] == pytest.approx(2.0)
    found |= {
        "command": "python scripts/bench.py --costs",
        "machine": report.machine(CPU),
        "threads": 1,
        "load_before": [0.0, 0.0, 0.0],
        "timed": "1 warm-up + 1 timed rounds each",
    }
    assert "| b | hiso | 0.0M | 0.0M | 150 | 2.00 | 1.80 |" in report.costs_markdown(found)


def test_seed_pool_bench_prints_a_line_a_round() -> None:
    """scripts/bench_seed_pool.py on 1,000 values: its header and one figure line per round."""
    done = subprocess.run(
        [sys.executable, "scripts/bench_seed_pool.py", "--params", "1000", "--rounds", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1,000 parameters, 4096 seeds, 2 new seeds a round")
    assert [line.split(":")[0] for line in lines[1:]] == ["round 1", "round 2"]
    assert "a full pass over the 4 seeds with A_j != 0" in lines[2]
