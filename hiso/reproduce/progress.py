"""How far a table's runs are (`reproduce.py TABLE --stage status`): each run's rounds against its
stage's, whether a process writes it now, its best validation accuracy so far, and the wall time
the rest needs at the runs' own recent pace. Reads the run folders only: it launches, changes and
creates nothing."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from hiso.reproduce.search import Search
from hiso.reproduce.sweep import Run, is_failed, is_finished, read_history, read_summary
from hiso.reproduce.tables import Cell, Method, Table
from hiso.run_lock import RunBusy, check_free
from hiso.tracking.records import human_duration

# rounds over which a run's pace is measured (its evaluations and any slow-down included)
RECENT = 50


@dataclass(frozen=True)
class Progress:
    """One run of a stage: `reached` of `rounds`, its state, its wall seconds a round over its
    last RECENT rounds (None: too few rounds to tell), and its best validation accuracy so far
    with its round (None: none scored)."""

    name: str
    method: str
    rounds: int
    reached: int
    state: str  # finished, failed, running, stopped, not started
    pace: float | None
    best: tuple[float, int] | None

    @property
    def left(self) -> int:
        return 0 if self.state in ("finished", "failed") else self.rounds - self.reached


def recent_pace(history: list[dict]) -> float | None:
    """Wall seconds a round between the run's last timed round and the one RECENT rounds before
    it (or its first timed round after round 0, whose time holds the first evaluation)."""
    timed = [r for r in history if r["round"] >= 1 and r.get("wall_time") is not None]
    if len(timed) < 2:
        return None
    last = timed[-1]
    first = next(r for r in timed if r["round"] >= last["round"] - RECENT)
    if first is last:
        first = timed[-2]
    return (last["wall_time"] - first["wall_time"]) / (last["round"] - first["round"])


def expected_pace(method: str, every: Sequence[Progress]) -> float | None:
    """The pace of a run of `method` that has none of its own yet: the median over the runs going
    now (the machine's present load) of its method, else of any method; else over every run of
    its method, else of the table (a finished run's pace is the load it ran under)."""
    running = [p for p in every if p.state == "running"]
    for pool in (running, every):
        for paced in (
            [p.pace for p in pool if p.method == method and p.pace is not None],
            [p.pace for p in pool if p.pace is not None],
        ):
            if paced:
                return statistics.median(paced)
    return None


def run_progress(run: Run, rounds: int, out: Path) -> Progress:
    directory = out / run.name
    history = read_history(directory)
    summary = read_summary(directory)
    if is_finished(summary, rounds):
        state = "finished"
    elif is_failed(summary):
        state = "failed"
    else:
        try:
            check_free(directory)
            state = "stopped" if history else "not started"
        except RunBusy:
            state = "running"
    reached = history[-1]["round"] if history else 0
    scored = [
        (r["val_accuracy"], -r["round"]) for r in history if r.get("val_accuracy") is not None
    ]
    best = max(scored, default=None)
    return Progress(
        run.name,
        run.method.name,
        rounds,
        reached,
        state,
        recent_pace(history),
        None if best is None else (best[0], -best[1]),
    )


def status(
    table: Table,
    found: list[tuple[Cell, Method, Search]],
    out: Path,
    search_upto: int,
    jobs: int,
    only: Collection[str] = (),
) -> str:
    """The table's state under `out`: every search run (the rates the search knows of so far),
    every final run (or, before a method's rate is chosen, how many it will have) of the methods
    named in `only` where it names any (a method kept for the rate a named one takes from it
    shows its search, not its finals: what the final stage would run), and the time left: each
    unfinished run's rounds at its own pace, else at `expected_pace`; divided by `jobs` runs at a
    time."""
    searched: list[Progress] = []
    finals: list[Progress] = []
    unchosen: list[tuple[str, str]] = []  # (cell/method, method) without a chosen rate yet
    open_searches = []
    for cell, method, search in found:
        if not method.rate_from and len(search.grid) > 1:
            for lr in sorted({*search.trials, *search.pending}):
                for seed in table.search_seeds:
                    searched.append(run_progress(Run(cell, method, lr, seed), search_upto, out))
            if not search.complete:
                open_searches.append(f"{cell.name}/{method.name}".lstrip("/"))
        if only and method.name not in only:
            continue
        if search.chosen is None:
            unchosen.append((f"{cell.name}/{method.name}".lstrip("/"), method.name))
        else:
            for seed in table.seeds:
                finals.append(
                    run_progress(Run(cell, method, search.chosen, seed), table.rounds, out)
                )
    every = searched + finals

    def pace_of(method: str, own: float | None = None) -> float | None:
        return own if own is not None else expected_pace(method, every)

    def line(p: Progress) -> str:
        pace = pace_of(p.method, p.pace)
        own = "" if p.pace is None else f"{p.pace:.1f} s/round"
        left = f"about {human_duration(p.left * pace)} left" if p.left and pace else ""
        best = "" if p.best is None else f"best val. {100 * p.best[0]:.1f}% (round {p.best[1]})"
        text = f"  {p.name:<34} {p.reached:>5}/{p.rounds:<5} {p.state:<11} {own:>13}  {best:<28}"
        return f"{text} {left}".rstrip()

    seeds = " ".join(map(str, table.search_seeds))
    lines = [f"{table.name} under {out}", f"search ({search_upto} rounds, seeds {seeds}):"]
    lines += [line(p) for p in searched] or ["  no search runs"]
    if open_searches:
        lines.append(
            "  open: " + ", ".join(open_searches) + " (the search may add rates past an edge "
            "or between rates once these finish)"
        )
    lines.append(f"final ({table.rounds} rounds, seeds {' '.join(map(str, table.seeds))}):")
    lines += [line(p) for p in finals]
    n = len(table.seeds)
    lines += [f"  {name}: rate not chosen yet, {n} runs to come" for name, _ in unchosen]
    # (rounds left, pace) of every unfinished run, those of unchosen rates included
    work = [(p.left, pace_of(p.method, p.pace)) for p in every if p.left]
    work += [(table.rounds, pace_of(method)) for _, method in unchosen for _ in range(n)]
    seconds = sum(left * pace for left, pace in work if pace is not None)
    unknown = sum(pace is None for _, pace in work)
    done = sum(p.state == "finished" for p in every)
    summary = f"{done} of {len(every) + n * len(unchosen)} runs finished"
    summary += f"; left: about {human_duration(seconds)} of run time"
    summary += f", {human_duration(seconds / jobs)} at {jobs} at a time" if jobs > 1 else ""
    if unknown:
        summary += f" and {unknown} runs of no known pace"
    lines.append(summary + " (not counting rates a search still adds)")
    return "\n".join(lines)
