"""Curves: a metric averaged over runs on the evaluation rounds they share, with its min-max band
and the mean cumulative byte counts at each of those rounds; a noisy per-round series smoothed."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from hiso.tracking.records import _finite as is_number

# cumulative byte counts carried along a curve: measured on the wire, and one client's bytes in
# the HiSo and DeComFL papers' conventions
BYTES = {
    "measured": "cumulative_bytes",
    "paper_hiso": "cumulative_paper_bytes_hiso",
    "paper_decomfl": "cumulative_paper_bytes_decomfl",
}


@dataclass
class CurvePoint:
    round: int
    mean: float
    low: float
    high: float
    bytes: dict[str, float | None] = field(default_factory=dict)


def mean_curve(histories: Sequence[list[dict]], key: str = "val_accuracy") -> list[CurvePoint]:
    """`key` averaged over the histories on the rounds where every one of them has it."""
    by_round = [{row["round"]: row for row in h if is_number(row.get(key))} for h in histories]
    if not by_round:
        return []
    rounds = sorted(set.intersection(*(set(rows) for rows in by_round)))
    points = []
    for rnd in rounds:
        values = [rows[rnd][key] for rows in by_round]
        means: dict[str, float | None] = {}
        for name, column in BYTES.items():
            counts = [rows[rnd].get(column) for rows in by_round]
            means[name] = statistics.fmean(counts) if all(map(is_number, counts)) else None
        points.append(CurvePoint(rnd, statistics.fmean(values), min(values), max(values), means))
    return points


def ema(values: Sequence[float], span: int) -> list[float]:
    """Exponential moving average with weight 2 / (span + 1) on the newest value, started at the
    first value: s[0] = v[0], s[t] = s[t-1] + a * (v[t] - s[t-1]). span 1 returns the values."""
    alpha = 2.0 / (span + 1)
    smoothed: list[float] = []
    for value in values:
        smoothed.append(value if not smoothed else smoothed[-1] + alpha * (value - smoothed[-1]))
    return smoothed


def ema_span(count: int) -> int:
    """The span a curve of `count` points is smoothed with: a tenth of it, from 1 to 50."""
    return max(1, min(50, count // 10))
