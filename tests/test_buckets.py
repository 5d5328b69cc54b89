"""Length buckets: the split is the cheapest one (checked against every split by brute force),
covers each example once, and leaves per-example losses as they are up to float rounding."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from test_lm_federation import lm_simulation

from hiso.federation.device import CPU_FORWARD_TOKENS, bucket_policy
from hiso.tasks.buckets import length_buckets

from configs import DEVICES


def split_cost(lengths: np.ndarray, groups: list[np.ndarray], call_cost: int) -> int:
    return sum(len(g) * int(lengths[g].max()) + call_cost for g in groups)


def cheapest_cost(lengths: np.ndarray, max_buckets: int, call_cost: int) -> int:
    """Least cost over every split of the sorted order into at most max_buckets runs."""
    ordered = np.sort(lengths)
    n, best = len(lengths), None
    for k in range(min(max_buckets, n)):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = (0, *cuts, n)
            cost = sum(
                (b - a) * int(ordered[b - 1]) + call_cost for a, b in itertools.pairwise(bounds)
            )
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(12))
def test_buckets_are_the_cheapest_split_and_cover_every_example_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, size=int(rng.integers(1, 10)))
    max_buckets, call_cost = int(rng.integers(1, 5)), int(rng.choice([0, 5, 40]))
    groups = length_buckets(lengths, max_buckets, call_cost)
    assert 1 <= len(groups) <= max_buckets
    assert sorted(int(i) for g in groups for i in g) == list(range(len(lengths)))
    assert all(np.all(np.diff(g) > 0) for g in groups)
    assert split_cost(lengths, groups, call_cost) == cheapest_cost(lengths, max_buckets, call_cost)


def test_ties_go_to_fewer_forwards_and_a_high_price_keeps_one() -> None:
    same = np.full(6, 9)
    assert len(length_buckets(same, 4, 0)) == 1
    spread = np.array([5, 30, 6, 31, 60, 59])
    assert len(length_buckets(spread, 8, 10_000)) == 1
    assert [g.tolist() for g in length_buckets(spread, 3, 0)] == [[0, 2], [1, 3], [4, 5]]
    assert length_buckets(np.array([], dtype=np.int64), 4, 0) == []


def test_bucket_policy_per_device() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert bucket_policy("off", cpu) == (1, 0)
    assert bucket_policy("auto", cpu) == (8, CPU_FORWARD_TOKENS)
    assert bucket_policy("auto", gpu) == (1, 0)
    assert bucket_policy("3", cpu) == bucket_policy("3", gpu) == (3, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_bucketed_losses_match_one_padded_forward(checkpoint: Path, device: torch.device) -> None:
    """Left padding is masked and positions count real tokens, so an example's loss does not
    depend on its forward's width; only the kernels' blocking changes: equal to float32 rounding."""
    one = lm_simulation(checkpoint, "federation.length_buckets=off", device=device)
    many = lm_simulation(checkpoint, "federation.length_buckets=4", device=device)
    rng = np.random.default_rng(0)
    index_lists = [rng.choice(one.task.num_train, 8, replace=False).tolist() for _ in range(3)]
    indices = [i for ix in index_lists for i in ix]
    lengths = many.task.lengths(indices)
    assert lengths is not None and lengths.max() > 1.5 * lengths.min()  # real padding to save
    plan = many.forwards.forwards(indices)
    assert len(plan) == 4
    assert sum(b["input_ids"].numel() for _, b in plan) < len(indices) * lengths.max()
    np.testing.assert_allclose(
        many.forwards.client_losses(index_lists)(),
        one.forwards.client_losses(index_lists)(),
        rtol=0,
        atol=1e-5,
    )
