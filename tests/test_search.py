"""The learning-rate search's rules (hiso/reproduce/search.py) on fake searches: a best rate on an
edge is extended past it, a diverged outer rate stops the extension, the grid is refined to 2x
around the best, and the choice is on the mean over the search seeds."""

from __future__ import annotations

import math

import pytest

from hiso.reproduce.search import Trial, search

SEEDS = (0, 1)


def fake(optimum: float, diverges_above: float = math.inf, runs: list[float] | None = None):
    """A search whose best validation accuracy peaks at `optimum` (a parabola in log10 lr, seed 1
    a point lower than seed 0) and whose runs diverge (fail at round 7) above `diverges_above`;
    every rate asked for is appended to `runs`."""

    def trial(lr: float) -> Trial:
        if runs is not None:
            runs.append(lr)
        top = 0.9 - 0.1 * math.log10(lr / optimum) ** 2
        failed = {s: 7 for s in SEEDS} if lr > diverges_above else {}
        return Trial(lr, {0: top, 1: top - 0.01}, {0: 50, 1: 60}, failed)

    return trial


def test_a_best_rate_on_the_lower_edge_is_extended_until_inside() -> None:
    runs: list[float] = []
    found = search((1e-3, 2e-3, 4e-3), fake(2e-4, runs=runs))
    assert list(dict.fromkeys(runs)) == [1e-3, 2e-3, 4e-3, 5e-4, 2.5e-4, 1.3e-4]
    assert found.log == [
        "best 0.001 is the lowest tried: adding 0.0005 (the grid's factor 2 below)",
        "best 0.0005 is the lowest tried: adding 0.00025 (the grid's factor 2 below)",
        "best 0.00025 is the lowest tried: adding 0.00013 (the grid's factor 2 below)",
    ]
    assert found.complete and found.chosen == 2.5e-4 and found.bracketed


def test_a_best_rate_on_the_upper_edge_is_extended_by_the_grids_factor() -> None:
    found = search((1e-3, 3e-3), fake(2e-2))
    # 9e-3 and 8.1e-2 are 3x from the best 2.7e-2: refined to 1.6e-2 and 4.7e-2
    assert sorted(found.trials) == [1e-3, 3e-3, 9e-3, 1.6e-2, 2.7e-2, 4.7e-2, 8.1e-2]
    assert found.chosen == 1.6e-2 and found.bracketed


def test_a_diverged_outer_rate_stops_the_extension() -> None:
    # the grid's top rate diverged: the best lasting rate below it is bracketed, nothing added
    found = search((1e-3, 2e-3, 4e-3), fake(1e-2, diverges_above=3e-3))
    assert sorted(found.trials) == [1e-3, 2e-3, 4e-3] and found.log == []
    assert found.chosen == 2e-3 and found.bracketed
    # best on the top edge: one extension, which diverged, ends the search
    found = search((1e-3, 2e-3), fake(1e-2, diverges_above=3e-3))
    assert sorted(found.trials) == [1e-3, 2e-3, 4e-3] and len(found.log) == 1
    assert found.chosen == 2e-3
    # every rate diverged: the search goes down
    found = search((1e-3, 2e-3), fake(1e-2, diverges_above=1.5e-4))
    assert found.log[0] == "every rate diverged: adding 0.0005 (the grid's factor 2 below)"
    assert found.chosen == 1.3e-4 and not found.trials[1.3e-4].diverged


def test_the_extension_stops_at_its_limit_and_says_the_best_is_not_bracketed() -> None:
    found = search((1e-3, 2e-3), fake(1e-6), limit=2)
    assert sorted(found.trials) == [2.5e-4, 5e-4, 1e-3, 2e-3]
    assert found.complete and found.chosen == 2.5e-4 and found.bracketed is False


def test_a_coarse_grid_is_refined_to_2x_around_the_best() -> None:
    found = search((3e-4, 1e-3, 3e-3, 1e-2), fake(1.5e-3))
    assert found.log == [
        "best 0.001 has a neighbour more than 2x away: adding 0.00055, 0.0017",
    ]
    rates = sorted(found.trials)
    chosen = found.chosen
    assert chosen == 1.7e-3
    i = rates.index(chosen)
    assert rates[i + 1] / chosen <= 2 and chosen / rates[i - 1] <= 2


def test_the_choice_is_on_the_mean_over_the_search_seeds() -> None:
    # seed 0 alone prefers 2.0; the mean over seeds 0 and 1 prefers 4.0
    best = {1.0: (0.5, 0.5), 2.0: (0.90, 0.70), 4.0: (0.80, 0.85)}

    def trial(lr: float) -> Trial:
        return Trial(lr, dict(zip(SEEDS, best[lr], strict=True)), {0: 10, 1: 10})

    found = search((1.0, 2.0, 4.0), trial, limit=0)
    assert found.chosen == 4.0
    assert found.trials[2.0].score == pytest.approx(0.80)


def test_a_rate_without_every_seeds_result_is_pending() -> None:
    done = fake(1e-3)
    found = search((5e-4, 1e-3, 2e-3), lambda lr: None if lr == 2e-3 else done(lr))
    assert found.pending == [2e-3] and not found.complete and found.chosen is None
    assert search((1e-3,), lambda lr: None).chosen == 1e-3  # one rate: nothing to search
