"""The table's statistics (hiso/reproduce/significance.py) against hand computations, and in a
table's rows: the speed-up's bootstrap interval and McNemar's paired test from stored bits."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import pytest

from hiso.reproduce.aggregate import table_rows
from hiso.reproduce.report import results_table
from hiso.reproduce.significance import bootstrap_interval, mcnemar, pooled_mcnemar, verdict
from hiso.tracking.predictions import encode

from synthetic_runs import TWO, record


def pair(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors with b examples right only in the first, c only in the second."""
    first = [True] * b + [False] * c + [True] * both + [False] * neither
    second = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(first), np.array(second)


def test_mcnemar_exact_for_few_discordant_examples() -> None:
    # 2 * P(Bin(10, 1/2) <= 1) = 2 * (1 + 10) / 1024
    result = mcnemar(*pair(1, 9))
    assert result == {"b": 1, "c": 9, "test": "exact", "p": pytest.approx(22 / 1024)}
    assert mcnemar(*pair(9, 1))["p"] == pytest.approx(22 / 1024)
    # b = c: p = min(1, 2 * 42 / 64) = 1
    assert mcnemar(*pair(3, 3))["p"] == 1.0
    assert mcnemar(*pair(0, 0)) == {"b": 0, "c": 0, "test": "exact", "p": 1.0}


def test_mcnemar_chi_square_with_continuity_correction_for_many() -> None:
    # (|10 - 30| - 1)^2 / 40 = 9.025 on 1 degree of freedom: p = 0.0026631 (chi-square tables)
    result = mcnemar(*pair(10, 30))
    assert result["test"] == "chi-square" and result["p"] == pytest.approx(0.0026631, rel=1e-4)
    with pytest.raises(ValueError, match="paired test on"):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_pooled_over_seeds_and_in_words() -> None:
    pooled = pooled_mcnemar([pair(1, 4), pair(0, 5)])
    assert pooled is not None
    assert (pooled["b"], pooled["c"], pooled["pairs"], pooled["examples"]) == (1, 9, 2, 26)
    assert pooled["p"] == pytest.approx(22 / 1024)
    assert "exceeds the noise" in verdict(pooled)
    assert "is within the noise" in verdict(pooled_mcnemar([pair(3, 5)]))
    assert pooled_mcnemar([]) is None


def test_bootstrap_interval_holds_the_estimate_and_shrinks_with_seeds() -> None:
    rng = np.random.default_rng(1)
    values = dict(enumerate(rng.normal(1.3, 0.2, size=40)))

    def mean(seeds: list[int]) -> float:
        return statistics.fmean(values[s] for s in seeds)

    few, many = list(range(4)), list(range(40))
    low, high = bootstrap_interval(few, mean)
    assert low <= mean(few) <= high
    wide = high - low
    low, high = bootstrap_interval(many, mean)
    assert low <= mean(many) <= high and high - low < wide / 2
    assert bootstrap_interval(few, mean) == bootstrap_interval(few, mean)  # seeded
    assert bootstrap_interval([0], mean) is None


def test_rows_carry_the_speedup_interval_and_the_paired_tests() -> None:
    table = dataclasses.replace(TWO, seeds=(1, 2, 3))
    curve = {0: 0.5, 25: 0.6, 50: 0.7, 75: 0.75, 100: 0.8}
    fast = {0: 0.5, 25: 0.7, 50: 0.8, 75: 0.85, 100: 0.85}
    truth = np.arange(40) % 2 == 0
    records = [
        record("decomfl", 1.0, 0, {0: 0.5, 50: 0.6}),
        record("decomfl", 2.0, 0, {0: 0.5, 50: 0.7}),
        record("hiso", 1.0, 0, {0: 0.5, 50: 0.8}),
        record("hiso", 2.0, 0, {0: 0.5, 50: 0.5}),
    ]
    for seed in (1, 2, 3):
        ref = record("decomfl", 2.0, seed, {**curve, 50: 0.7 - seed / 100})
        own = record("hiso", 1.0, seed, {**fast, 50: 0.8 - seed / 50})
        # per seed: the method right on 3 examples the reference missed, wrong on 1 it got
        mine, theirs = truth.copy(), truth.copy()
        theirs[:3] = ~truth[:3]
        mine[3] = ~truth[3]
        for run, bits in ((ref, theirs), (own, mine)):
            assert run.summary is not None
            run.summary["test_correct"] = {"final": encode(bits, 100), "best": encode(bits, 75)}
        records += [ref, own]
    rows = {r["method"]: r for r in table_rows(table, table.cells, records, search_upto=50)}
    hiso = rows["hiso"]
    assert hiso["speedup"] == pytest.approx(100 / 75)
    low, high = hiso["speedup_ci95"]
    assert low <= hiso["speedup"] <= high
    final = hiso["paired_test"]["final"]
    assert (final["b"], final["c"], final["pairs"], final["test"]) == (9, 3, 3, "exact")
    # 2 * P(Bin(12, 1/2) <= 3) = 2 * (1 + 12 + 66 + 220) / 4096
    assert final["p"] == pytest.approx(2 * 299 / 4096)
    assert rows["decomfl"]["speedup_ci95"] is None
    assert rows["decomfl"]["paired_test"] == {"final": None, "best": None}
    # a method that never reaches the reference's best: no speed-up, and an interval of zeros
    slow = [r for r in records if r.method != "hiso" or r.seed == 0]
    for seed in (1, 2, 3):
        slow.append(record("hiso", 1.0, seed, {k: v - 0.2 for k, v in curve.items()}))
    rows = {r["method"]: r for r in table_rows(table, table.cells, slow, search_upto=50)}
    assert rows["hiso"]["speedup"] is None and rows["hiso"]["speedup_ci95"] == (0.0, 0.0)
    assert "| - [not reached, not reached] |" in results_table(table, list(rows.values()))
