"""From a table's runs to its rows: the learning rate chosen on validation, final figures over
seeds, and rounds and bytes to reach the reference method's best validation accuracy.

Selection never looks at the test split: a method's learning rate is the one whose search runs
have the highest mean best validation accuracy over the search seeds within the search rounds,
on a grid extended until that rate is bracketed (hiso/reproduce/search.py), and the rounds to the
reference's best are read off the mean validation curves over seeds.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hiso.reproduce.search import Search, Trial, nice, search
from hiso.reproduce.significance import bootstrap_interval, pooled_mcnemar
from hiso.reproduce.sweep import is_failed, rounds_reached
from hiso.reproduce.tables import Cell, Method, Table
from hiso.tracking.curves import BYTES, CurvePoint, is_number, mean_curve
from hiso.tracking.predictions import decode

VAL = "val_accuracy"
# the evaluations whose per-example test correctness a run stores: the last round's and the best
# validation round's
CORRECTNESS = ("final", "best")
# summary figures averaged over seeds
FIGURES = (
    "final_test_accuracy",
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy_at_best",
    "seconds_per_round",
    "total_seconds",
)


@dataclass
class RunRecord:
    """One run of a table as found on disk: what it is, its metrics and summary (None: none),
    and whether it finished with the table's rounds (a final run)."""

    cell: str
    method: str
    algorithm: str
    lr: float
    seed: int
    history: list[dict]
    summary: dict[str, Any] | None
    finished: bool = False

    def searched(self, rounds: int) -> bool:
        """Whether the run counts in a search of `rounds`: it got that far, or failed (a
        diverging rate is a result: its best validation accuracy before it failed)."""
        return is_failed(self.summary) or self.history[-1]["round"] >= rounds


def best_validation(history: list[dict], upto: int | None = None) -> tuple[float, int] | None:
    """(highest val_accuracy, the first round with it) among rounds <= upto (None: all)."""
    best: tuple[float, int] | None = None
    for row in history:
        if upto is not None and row["round"] > upto:
            break
        value = row.get(VAL)
        if is_number(value) and (best is None or value > best[0]):
            best = (float(value), int(row["round"]))
    return best


def first_reaching(curve: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    return next((p for p in curve if p.mean >= target), None)


def _rounds_per_seed(
    runs: dict[int, list[dict]], reference: dict[int, list[dict]]
) -> dict[int, int | None]:
    """Per seed: the first round of the run reaching the same seed's reference best."""
    reached: dict[int, int | None] = {}
    for seed, history in runs.items():
        target = best_validation(reference.get(seed, []))
        hit = None if target is None else first_reaching(mean_curve([history]), target[0])
        reached[seed] = None if hit is None else hit.round
    return reached


def spread(values: dict[int, Any]) -> dict[str, Any]:
    """Mean and sample standard deviation of the numeric values, and the values by seed."""
    numbers = [v for v in values.values() if is_number(v)]
    return {
        "mean": statistics.fmean(numbers) if numbers else None,
        "std": statistics.stdev(numbers) if len(numbers) > 1 else None,
        "per_seed": values,
    }


def method_search(
    method: Method,
    runs: list[RunRecord],
    search_seeds: Sequence[int],
    upto: int,
    limit: int,
) -> Search:
    """The method's search over the runs found: a rate counts once every search seed's run has
    `upto` rounds (finished or not: a run continued past the search keeps its first rounds) or
    has failed."""
    found = {
        (r.lr, r.seed): r for r in runs if r.seed in search_seeds and r.history and r.searched(upto)
    }

    def trial(lr: float) -> Trial | None:
        best, rounds, failed = {}, {}, {}
        for seed in search_seeds:
            run = found.get((lr, seed))
            top = None if run is None else best_validation(run.history, upto)
            if run is None or top is None:
                return None
            best[seed], rounds[seed] = top
            if is_failed(run.summary):
                failed[seed] = rounds_reached(run.summary)
        return Trial(lr, best, rounds, failed)

    return search(method.lrs, trial, limit)


def derived_search(
    method: Method,
    source: Search,
    source_runs: list[RunRecord],
    search_seeds: Sequence[int],
    upto: int,
) -> Search:
    """The one rate of a method whose rate comes from another's (`Method.rate_from`): the mean
    over rounds 0..upto of the effective rate (lr * mean(1/H) for HiSo) of the source's search
    runs at its chosen rate (the search seeds), each run's logged at its evaluations and weighted
    by the rounds each stands for (the trapezoid rule between evaluations: the value at round 0,
    H = 1 before any step, stands for the first rounds alone, not for one evaluation's share),
    averaged over the runs, 2 significant digits. No rate (nothing chosen) until the source's
    search is complete and logged one."""
    lr = source.chosen
    paths = [
        [
            (row["round"], float(row["effective_lr"]))
            for row in run.history
            if row["round"] <= upto and is_number(row.get("effective_lr"))
        ]
        for run in source_runs
        if run.lr == lr and run.seed in search_seeds
    ]
    paths = [path for path in paths if path]
    if lr is None or not paths:
        return Search((), {}, [], [])
    rate = nice(statistics.fmean(round_mean(path) for path in paths))
    evaluations = sum(len(path) for path in paths)
    why = (
        f"rate {rate!r}: the mean effective rate of {method.rate_from} at its chosen {lr!r} over "
        f"the rounds of its search runs (seeds {', '.join(map(str, search_seeds))}, rounds <= "
        f"{upto}; {evaluations} evaluations, each stretch between two weighted by its rounds)"
    )
    return Search((rate,), {}, [], [why])


def round_mean(path: Sequence[tuple[int, float]]) -> float:
    """The mean over rounds of a value logged at some rounds, (round, value) in order of
    round: the trapezoid rule between consecutive rounds; points at one round alone, their mean."""
    span = path[-1][0] - path[0][0]
    if span == 0:
        return statistics.fmean(value for _, value in path)
    area = sum((r1 - r0) * (v0 + v1) / 2 for (r0, v0), (r1, v1) in itertools.pairwise(path))
    return area / span


def cell_searches(
    table: Table, cell: Cell, records: list[RunRecord], upto: int
) -> dict[str, Search]:
    """Every method's search in a cell, a derived rate after its source's."""
    runs = {
        m.name: [r for r in records if r.cell == cell.name and r.method == m.name]
        for m in table.cell_methods(cell)
    }
    found: dict[str, Search] = {}
    methods = table.cell_methods(cell)
    for method in sorted(methods, key=lambda m: bool(m.rate_from)):
        if method.rate_from:
            source = found.get(method.rate_from, Search((), {}, [], []))
            found[method.name] = derived_search(
                method, source, runs.get(method.rate_from, []), table.search_seeds, upto
            )
        else:
            found[method.name] = method_search(
                method, runs[method.name], table.search_seeds, upto, table.max_extensions
            )
    return found


def method_row(
    method: Method,
    runs: list[RunRecord],
    table: Table,
    found: Search,
    reference: list[RunRecord] | None,
) -> dict[str, Any]:
    """One (cell, method) row: the search, the chosen rate and the final figures over seeds.

    `runs` are the method's runs in the cell, `found` its search; a final run counts once
    finished. `reference` holds the reference method's final runs (None: the cell has none).
    """
    seeds = table.seeds
    chosen = found.chosen
    tried = {}
    for lr in sorted(found.trials):
        t = found.trials[lr]
        tried[repr(lr)] = {
            "best_val_accuracy": t.score,
            "best_val_accuracy_per_seed": t.best,
            "best_round": round(statistics.fmean(t.rounds.values())),
            "failed_at_round": min(t.failed_at.values(), default=None),
        }
    final = sorted(
        (r for r in runs if r.lr == chosen and r.seed in seeds and r.finished),
        key=lambda r: r.seed,
    )
    row: dict[str, Any] = {
        "method": method.name,
        "label": method.title,
        "algorithm": method.algo,
        "lrs_tried": tried,
        "chosen_lr": chosen,
        "bracketed": found.bracketed,
        "search_log": found.log,
        "search_pending": found.pending,
        "seeds": [r.seed for r in final],
        "runs_expected": len(seeds),
    }
    for key in FIGURES:
        row[key] = spread({r.seed: (r.summary or {}).get(key) for r in final})
    row["rounds_to_reference_best"] = None
    row["rounds_to_reference_best_per_seed"] = {}
    row["bytes_to_reference_best"] = dict.fromkeys(BYTES)
    if final and reference:
        target = max((p.mean for p in mean_curve([r.history for r in reference])), default=None)
        curve = mean_curve([r.history for r in final])
        hit = None if target is None else first_reaching(curve, target)
        if hit is not None:
            row["rounds_to_reference_best"] = hit.round
            row["bytes_to_reference_best"] = hit.bytes
        row["rounds_to_reference_best_per_seed"] = _rounds_per_seed(
            {r.seed: r.history for r in final}, {r.seed: r.history for r in reference}
        )
    return row


def _final(row: dict[str, Any], runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.lr == row["chosen_lr"] and r.seed in row["seeds"] and r.finished]


def table_rows(
    table: Table, cells: Sequence[Cell], records: list[RunRecord], search_upto: int
) -> list[dict[str, Any]]:
    """Every (cell, method) row of a table from the runs found, the reference method first
    computed so that the others are timed against its best validation accuracy."""
    rows: list[dict[str, Any]] = []
    for cell in cells:
        methods = table.cell_methods(cell)
        runs = {
            m.name: [r for r in records if r.cell == cell.name and r.method == m.name]
            for m in methods
        }
        searches = cell_searches(table, cell, records, search_upto)
        reference = None
        if table.reference in runs:
            ref_method = table.method(table.reference)
            ref_runs = runs[ref_method.name]
            ref_row = method_row(ref_method, ref_runs, table, searches[ref_method.name], None)
            reference = _final(ref_row, ref_runs) or None
        cell_rows = [
            method_row(m, runs[m.name], table, searches[m.name], reference) for m in methods
        ]
        base = next(
            (r["rounds_to_reference_best"] for r in cell_rows if r["method"] == table.reference),
            None,
        )
        for method, row in zip(methods, cell_rows, strict=True):
            own = row["rounds_to_reference_best"]
            paper = cell.paper.get(row["method"])
            row["cell"] = cell.name
            row["speedup"] = base / own if base and own else None
            row["paper"] = {"accuracy": None, "rounds": None} if paper is None else asdict(paper)
            final = _final(row, runs[method.name])
            against = reference if method.name != table.reference else None
            # every method with finals against the reference, reached or not (0: not reached)
            row["speedup_ci95"] = speedup_interval(final, against) if against else None
            row["paired_test"] = {
                kind: pooled_mcnemar(paired_correctness(final, against or [], kind))
                for kind in CORRECTNESS
            }
        rows.extend(cell_rows)
    return rows


def speedup(
    runs: dict[int, list[dict]], reference: dict[int, list[dict]], seeds: list[int]
) -> float:
    """The reference's rounds to its best mean validation accuracy over `seeds` divided by the
    method's rounds to it on its mean curve over the same seeds (0: not reached)."""
    target_curve = mean_curve([reference[s] for s in seeds])
    target = max(p.mean for p in target_curve)
    ref_hit = first_reaching(target_curve, target)
    hit = first_reaching(mean_curve([runs[s] for s in seeds]), target)
    assert ref_hit is not None
    if hit is None:
        return 0.0
    if hit.round == 0:
        return 1.0 if ref_hit.round == 0 else math.inf
    return ref_hit.round / hit.round


def speedup_interval(
    final: list[RunRecord], reference: list[RunRecord]
) -> tuple[float, float] | None:
    """95% bootstrap interval of the speed-up over the seeds both have, resampled in pairs."""
    runs = {r.seed: r.history for r in final}
    ref = {r.seed: r.history for r in reference}
    seeds = sorted(runs.keys() & ref.keys())
    return bootstrap_interval(seeds, lambda drawn: speedup(runs, ref, drawn))


def paired_correctness(
    final: list[RunRecord], reference: list[RunRecord], kind: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(method, reference) per-example test correctness at each seed both stored it (summary
    key `test_correct`, hiso/tracking/predictions.py) on the same number of examples."""

    def bits(run: RunRecord) -> np.ndarray | None:
        entry = ((run.summary or {}).get("test_correct") or {}).get(kind)
        return None if entry is None else decode(entry)

    ref = {r.seed: bits(r) for r in reference}
    pairs = []
    for run in final:
        mine, theirs = bits(run), ref.get(run.seed)
        if mine is not None and theirs is not None and mine.size == theirs.size:
            pairs.append((mine, theirs))
    return pairs
