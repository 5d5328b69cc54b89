"""Whether a difference in accuracy between two methods exceeds the noise.

Two sources: the spread over seeds (training randomness: data order, directions, client
sampling) and the evaluation set's own sampling error, the binomial standard error
sqrt(p(1-p)/n) of an accuracy p measured on n examples. A difference is read as exceeding the
noise when it is larger than twice the larger of the two standard errors of the difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p measured on n examples."""
    return math.sqrt(p * (1 - p) / n)


def seed_se(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Standard error of mean(a) - mean(b) from the spread over seeds (None: < 2 seeds each)."""
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def compare(
    a: Sequence[float], b: Sequence[float], n: int | None
) -> dict[str, float | bool | None]:
    """mean(a) - mean(b), its standard errors over seeds and from the evaluation set of n
    examples (unpaired: conservative when both are scored on the same examples), and whether
    the difference exceeds twice the larger of the two."""
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    seeds = seed_se(a, b)
    evaluation = (
        None if n is None else math.sqrt(binomial_se(mean_a, n) ** 2 + binomial_se(mean_b, n) ** 2)
    )
    known = [se for se in (seeds, evaluation) if se is not None]
    return {
        "difference": mean_a - mean_b,
        "seed_se": seeds,
        "evaluation_se": evaluation,
        "exceeds_noise": abs(mean_a - mean_b) > 2 * max(known) if known else None,
    }


def reading(label: str, reference: str, split: str, result: dict, n: int | None) -> str:
    """One sentence of the comparison in accuracy points."""

    def points(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    verdict = {
        True: "exceeds the noise",
        False: "is within the noise",
        None: "cannot be judged (one seed, evaluation size unknown)",
    }[result["exceeds_noise"]]
    size = "n unknown" if n is None else f"n = {n}"
    return (
        f"{label} - {reference}, {split}: {points(result['difference'])} points; standard error "
        f"over seeds {points(result['seed_se'])}, of the evaluation set "
        f"{points(result['evaluation_se'])} ({size}): the difference {verdict}."
    )
