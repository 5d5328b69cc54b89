"""The committed digits table (docs/results/digits.json) follows the protocol of issue 19: rates
chosen on at least two search seeds, finals on at least three other seeds, the chosen rate of
every searched method strictly inside the rates tried unless the rate beyond it diverged, a
speed-up interval on HiSo's rows, and HiSo's effective rate on its curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    return json.loads((RESULTS / "digits.json").read_text())


def test_rates_chosen_on_two_seeds_and_reported_on_three_others(digits: dict[str, Any]) -> None:
    search, finals = set(digits["search_seeds"]), set(digits["seeds"])
    assert len(search) >= 2 and len(finals) >= 3 and not search & finals
    for row in digits["rows"]:
        assert set(row["seeds"]) <= finals, row["method"]
        assert len(row["seeds"]) >= 2, row["method"]  # a third diverged at most
    core = {r["method"]: r for r in digits["rows"]}
    for name in ("decomfl", "hiso", "hiso-global"):
        assert sorted(core[name]["seeds"]) == sorted(finals), name


def test_every_searched_rate_is_bracketed_at_2x_spacing(digits: dict[str, Any]) -> None:
    """The chosen rate has a rate tried on each side (one that diverged counts), at most 2x away
    (the refinement's midpoints have 2 significant digits: 5% slack)."""
    for row in digits["rows"]:
        rates = sorted(float(lr) for lr in row["lrs_tried"])
        if not rates:
            continue  # a rate taken from another row (DeComFL at HiSo's effective rate)
        chosen = row["chosen_lr"]
        assert rates[0] < chosen < rates[-1], (row["method"], chosen, rates)
        k = rates.index(chosen)
        assert chosen / rates[k - 1] <= 2.1 and rates[k + 1] / chosen <= 2.1, (row["method"], rates)


def test_hiso_rows_carry_the_speedup_interval_and_curves_the_effective_rate(
    digits: dict[str, Any],
) -> None:
    rows = {r["method"]: r for r in digits["rows"]}
    for name in ("hiso", "hiso-global"):
        low, high = rows[name]["speedup_ci95"]
        assert 0 <= low <= high, name
    hiso_runs = [r for r in digits["runs"] if r["method"] in ("hiso", "hiso-global")]
    assert hiso_runs
    for run in hiso_runs:
        for point in run["curve"]:
            assert point["effective_lr"] > 0, (run["method"], run["lr"], run["seed"])
