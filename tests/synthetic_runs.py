"""A synthetic two-method table (DeComFL and HiSo at two rates; search seed 0, final seeds 1
and 2) and run records for it, as hiso.reproduce reads them from run folders."""

from __future__ import annotations

from hiso.reproduce.aggregate import RunRecord
from hiso.reproduce.tables import Method, Table

TWO = Table(
    name="two",
    title="two methods",
    source="synthetic",
    experiment="digits",
    methods=(Method("decomfl", "decomfl", (1.0, 2.0)), Method("hiso", "hiso", (1.0, 2.0))),
    seeds=(1, 2),
    search_seeds=(0,),
    rounds=100,
    search_rounds=50,
    # the bracketing rules have their own tests (tests/test_search.py): two rates stay two here
    max_extensions=0,
)


def history(val: dict[int, float], test: float = 0.5, per_round: int = 10) -> list[dict]:
    """Rounds 0..max(val): bytes grow by per_round (HiSo convention 40/round, DeComFL 60), the
    validation accuracy where given and the test accuracy at the first and last round."""
    last = max(val)
    rows = []
    for rnd in range(last + 1):
        row: dict = {
            "round": rnd,
            "cumulative_bytes": per_round * rnd,
            "cumulative_paper_bytes_hiso": 40 * rnd,
            "cumulative_paper_bytes_decomfl": 60 * rnd,
        }
        if rnd in val:
            row["val_accuracy"] = val[rnd]
        if rnd in (0, last):
            row["test_accuracy"] = test
        rows.append(row)
    return rows


def record(method: str, lr: float, seed: int, val: dict[int, float], **summary) -> RunRecord:
    finished = max(val) >= TWO.rounds
    h = history(val, summary.get("final_test_accuracy", 0.5), 10 + seed)
    return RunRecord("", method, method, lr, seed, h, {"status": "finished", **summary}, finished)
