"""A method's learning-rate search: its grid extended until the best rate is bracketed, refined
to at most 2x spacing around the best, each rate scored on the mean over the search seeds of the
best validation accuracy within the search rounds.

The rules (issue 19), applied to the results so far until nothing is added:
- The best rate is the one with the highest mean best validation accuracy (ties: the lower mean
  round reaching it); a rate whose run diverged on any search seed is chosen only when every rate
  diverged (the finals need a rate that lasts their rounds).
- Best at the lowest or highest rate tried: the next rate beyond it by the grid's factor at that
  edge (grid[1] / grid[0], grid[-1] / grid[-2]) is added. A diverged rate beyond the best is a
  bracket: it scores below every rate that lasted. Every rate diverged: the next lower one.
- Bracketed with a neighbour more than 2x away: the geometric midpoint (2 significant digits)
  is added on that side.
- At most `limit` extensions on each side of the grid; a search stopped there is complete but
  not bracketed, and says so.

Everything is a function of the results: rerunning the rules over the runs on disk finds the same
rates, so a search needs no state file and resumes like any run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# at most this ratio between the best rate and each neighbour
SPACING = 2.0
# extensions allowed past each end of a grid
MAX_EXTENSIONS = 4


@dataclass(frozen=True)
class Trial:
    """One rate's search runs: per search seed, the best validation accuracy within the search
    rounds, the first round with it, and the round where a run failed (diverged)."""

    lr: float
    best: dict[int, float]
    rounds: dict[int, int]
    failed_at: dict[int, int] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Mean best validation accuracy over the search seeds."""
        return statistics.fmean(self.best.values())

    @property
    def diverged(self) -> bool:
        return bool(self.failed_at)

    def rank(self) -> tuple[bool, float, float]:
        return (not self.diverged, self.score, -statistics.fmean(self.rounds.values()))


def nice(lr: float) -> float:
    """A rate rounded to 2 significant digits (run names stay readable)."""
    return float(f"{lr:.2g}")


def best_of(trials: Sequence[Trial]) -> Trial:
    return max(trials, key=Trial.rank)


def next_rates(
    grid: Sequence[float], trials: dict[float, Trial], limit: int = MAX_EXTENSIONS
) -> tuple[list[float], str]:
    """The rates to add to a complete set of trials, with why (none: the search is done)."""
    rates = sorted(trials)
    if len(grid) < 2 or len(rates) < 2:
        return [], ""
    best = best_of(list(trials.values()))
    below = sum(lr < min(grid) for lr in rates)
    above = sum(lr > max(grid) for lr in rates)
    low_factor, high_factor = grid[1] / grid[0], grid[-1] / grid[-2]
    if best.diverged or best.lr == rates[0]:
        why = "every rate diverged" if best.diverged else f"best {best.lr!r} is the lowest tried"
        if below >= limit:
            return [], ""
        lr = nice(rates[0] / low_factor)
        return [lr], f"{why}: adding {lr!r} (the grid's factor {low_factor:.3g} below)"
    if best.lr == rates[-1]:
        if above >= limit:
            return [], ""
        lr = nice(rates[-1] * high_factor)
        why = f"best {best.lr!r} is the highest tried"
        return [lr], f"{why}: adding {lr!r} (the grid's factor {high_factor:.3g} above)"
    i = rates.index(best.lr)
    added = []
    for neighbour in (rates[i - 1], rates[i + 1]):
        ratio = max(neighbour, best.lr) / min(neighbour, best.lr)
        if ratio > SPACING * (1 + 1e-9):
            mid = nice(math.sqrt(neighbour * best.lr))
            if mid not in trials and mid != best.lr:
                added.append(mid)
    if not added:
        return [], ""
    return sorted(added), (
        f"best {best.lr!r} has a neighbour more than {SPACING:g}x away: adding "
        + ", ".join(map(repr, sorted(added)))
    )


@dataclass
class Search:
    """Where a method's search stands: the trials with every search seed's result, the rates
    still to run, what was added and why, and the choice once complete."""

    grid: tuple[float, ...]
    trials: dict[float, Trial]
    pending: list[float]
    log: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def chosen(self) -> float | None:
        if len(self.grid) == 1:
            return self.grid[0]
        if self.pending or not self.trials:
            return None
        return best_of(list(self.trials.values())).lr

    @property
    def bracketed(self) -> bool | None:
        """Whether the chosen rate has a tried rate on each side (None: not chosen yet)."""
        chosen = self.chosen
        if chosen is None or len(self.grid) == 1:
            return None
        return min(self.trials) < chosen < max(self.trials)


def search(
    grid: Sequence[float], trial: Callable[[float], Trial | None], limit: int = MAX_EXTENSIONS
) -> Search:
    """Apply the rules to the results `trial(lr)` gives (None: not every search seed has a
    result yet), from the grid, until a rate is pending or nothing is added."""
    rates, log = list(grid), []
    if len(rates) == 1:
        return Search(tuple(grid), {}, [], log)
    while True:
        found = {lr: t for lr in rates if (t := trial(lr)) is not None}
        pending = [lr for lr in rates if lr not in found]
        if pending:
            return Search(tuple(grid), found, pending, log)
        added, why = next_rates(grid, found, limit)
        if not added:
            return Search(tuple(grid), found, [], log)
        log.append(why)
        rates += added
