"""The GPU path's own properties (skipped without a CUDA device; `make gpu-check` runs them):
float32 forwards stay float32, one forward per evaluation under automatic length buckets,
bfloat16 autocast over float32 master weights, and peak-memory accounting. Replay, the HiSo
beta = 1 identity, length buckets and the direction cache run on CUDA through the CPU tests'
device parameter (tests/configs.py DEVICES); the default job in tests/test_hf_models.py."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch
from test_lm_federation import lm_simulation
from test_replay import assert_replicas_hold_the_server_state, run_with_replicas

from hiso.federation.device import peak_memory_bytes

from configs import CPU, CUDA, digits_simulation

pytestmark = pytest.mark.cuda


def test_float32_finite_differences_match_the_cpu() -> None:
    """The CNN's losses at x and at x + mu u, and their difference over mu, as on the CPU: a
    convolution in TF32 (cuDNN's default) would move each loss by about 1e-3 relative, as much as
    the perturbation itself."""
    cpu, gpu = digits_simulation(device=CPU), digits_simulation(device=CUDA)
    mu = cpu.cfg.algo.mu
    batches = [list(range(0, 8)), list(range(8, 16))]
    generator = torch.Generator().manual_seed(0)
    directions = [torch.randn(x.shape, generator=generator) for x in cpu.master]
    at_x = [sim.forwards.client_losses(batches)() for sim in (cpu, gpu)]
    for sim in (cpu, gpu):
        for x, u in zip(sim.master, directions, strict=True):
            x.add_(u.to(x.device), alpha=mu)
    at_x_mu = [sim.forwards.client_losses(batches)() for sim in (cpu, gpu)]
    np.testing.assert_allclose(at_x[1], at_x[0], rtol=1e-5)
    differences = [(f1 - f0) / mu for f0, f1 in zip(at_x, at_x_mu, strict=True)]
    np.testing.assert_allclose(differences[1], differences[0], rtol=1e-2, atol=1e-2)


def test_automatic_length_buckets_keep_one_forward_on_a_gpu(checkpoint: Path) -> None:
    auto = lm_simulation(checkpoint, "federation.length_buckets=auto", device=CUDA)
    split = lm_simulation(checkpoint, "federation.length_buckets=3", device=CUDA)
    indices = list(range(24))
    assert len(auto.forwards.forwards(indices)) == 1
    assert len(split.forwards.forwards(indices)) == 3
    index_lists = [indices[:8], indices[8:16], indices[16:]]
    np.testing.assert_allclose(
        split.forwards.client_losses(index_lists)(),
        auto.forwards.client_losses(index_lists)(),
        rtol=0,
        atol=1e-5,
    )


def test_bfloat16_autocast_keeps_float32_masters_and_exact_replay(checkpoint: Path) -> None:
    """Forwards run in bfloat16 (losses move by its rounding, about 1e-2), the parameters and
    the record's application stay float32: a replica still rebuilds the model bit for bit."""
    float32 = lm_simulation(checkpoint, device=CUDA)
    bfloat16 = lm_simulation(checkpoint, "model.forward_dtype=bfloat16", device=CUDA)
    index_lists = [list(range(0, 8)), list(range(8, 16))]
    exact, rounded = (
        float32.forwards.client_losses(index_lists)(),
        bfloat16.forwards.client_losses(index_lists)(),
    )
    assert not np.array_equal(exact, rounded)
    np.testing.assert_allclose(rounded, exact, rtol=5e-2)
    replicas = run_with_replicas(bfloat16)
    assert {x.dtype for x in bfloat16.master} == {torch.float32}
    assert_replicas_hold_the_server_state(bfloat16, replicas)


def round_peak(checkpoint: Path, algo: str) -> tuple[int, int, int, int]:
    """(peak bytes above what was allocated before, parameter count, largest tensor, bytes of
    HiSo's curvature-probe indices) of building a simulation and running one round, the direction
    cache off (as scripts/bench.py)."""
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    before = torch.cuda.memory_allocated(CUDA)
    sim = lm_simulation(checkpoint, f"algo={algo}", "algo.direction_cache=off", device=CUDA)
    sim.run_round(0)
    peak = peak_memory_bytes(CUDA) - before
    size, largest = sim.num_parameters, max(x.numel() for x in sim.master)
    probe = getattr(sim.algorithm, "probe", None)
    probe = 0 if probe is None else sum(8 * i.numel() for i in probe.indices)
    del sim
    return peak, size, largest, probe


def test_peak_memory_counts_the_gpu_allocations_of_a_round(checkpoint: Path) -> None:
    """DeComFL holds the float32 parameters and the perturbed copy; HiSo adds its curvature H
    (and the index sample of its curvature metrics): between one and (one plus three of the
    largest tensor) copies more, which is scripts/bench.py's bound."""
    decomfl, size, largest, _ = round_peak(checkpoint, "decomfl")
    hiso, _, _, probe = round_peak(checkpoint, "hiso")
    assert decomfl >= 2 * 4 * size
    assert 4 * size <= hiso - decomfl <= 4 * (size + 3 * largest) + probe
