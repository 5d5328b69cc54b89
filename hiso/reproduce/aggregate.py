"""From a table's runs to its rows: the learning rate chosen on validation, final figures over
seeds, and rounds and bytes to reach the reference method's best validation accuracy.

Selection never looks at the test split: a method's learning rate is the one whose search run
(first seed) has the highest validation accuracy within the search rounds, and the rounds to the
reference's best are read off the mean validation curves over seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hiso.reproduce.sweep import is_failed, rounds_reached
from hiso.reproduce.tables import Cell, Method, Table
from hiso.tracking.curves import BYTES, CurvePoint, is_number, mean_curve

VAL = "val_accuracy"
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


def choose_lr(
    search: dict[float, list[dict]], upto: int | None, failed: frozenset[float] = frozenset()
) -> float | None:
    """The learning rate whose history has the highest validation accuracy within `upto` rounds
    (ties: the one reaching it first); None when a rate has no validation point. A rate whose run
    failed (diverged) is chosen only when every rate failed: its best validation accuracy came
    before the failure, and the final seeds need a rate that lasts their rounds."""
    scored: dict[float, tuple[bool, float, int]] = {}
    for lr, history in search.items():
        best = best_validation(history, upto)
        if best is None:
            return None
        scored[lr] = (lr not in failed, best[0], -best[1])
    return max(scored, key=scored.__getitem__, default=None)


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


def method_row(
    method: Method,
    runs: list[RunRecord],
    seeds: Sequence[int],
    search_seed: int,
    search_upto: int,
    reference: list[RunRecord] | None,
) -> dict[str, Any]:
    """One (cell, method) row: the search, the chosen rate and the final figures over seeds.

    `runs` are the method's runs in the cell; a search run counts once it has `search_upto`
    rounds (finished or not: a run continued past the search keeps its first rounds) or has
    failed, a final run once finished. `reference` holds the reference method's final runs
    (None: the cell has none).
    """
    search = {
        r.lr: r.history
        for r in runs
        if r.seed == search_seed and r.lr in method.lrs and r.history and r.searched(search_upto)
    }
    failed_at = {
        r.lr: rounds_reached(r.summary)
        for r in runs
        if r.seed == search_seed and r.lr in search and is_failed(r.summary)
    }
    if len(method.lrs) == 1:
        chosen: float | None = method.lrs[0]
    elif len(search) == len(method.lrs):
        chosen = choose_lr(search, search_upto, frozenset(failed_at))
    else:
        chosen = None
    tried = {}
    for lr in method.lrs:
        best = best_validation(search[lr], search_upto) if lr in search else None
        tried[repr(lr)] = {
            "best_val_accuracy": None if best is None else best[0],
            "best_round": None if best is None else best[1],
            "failed_at_round": failed_at.get(lr),
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
        reference = None
        if table.reference in runs:
            ref_method = table.method(table.reference)
            ref_runs = runs[ref_method.name]
            ref_row = method_row(
                ref_method, ref_runs, table.seeds, table.selection_seed, search_upto, None
            )
            reference = _final(ref_row, ref_runs) or None
        cell_rows = [
            method_row(m, runs[m.name], table.seeds, table.selection_seed, search_upto, reference)
            for m in methods
        ]
        base = next(
            (r["rounds_to_reference_best"] for r in cell_rows if r["method"] == table.reference),
            None,
        )
        for row in cell_rows:
            own = row["rounds_to_reference_best"]
            paper = cell.paper.get(row["method"])
            row["cell"] = cell.name
            row["speedup"] = base / own if base and own else None
            row["paper"] = {"accuracy": None, "rounds": None} if paper is None else asdict(paper)
        rows.extend(cell_rows)
    return rows
