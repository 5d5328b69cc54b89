"""The statistics a reviewer asks of a table: a bootstrap interval over seeds for the speed-up to
the reference's best validation accuracy, and McNemar's paired test between a method and the
reference on the same test examples at equal seeds.

Bootstrap: the seeds are resampled with replacement RESAMPLES times (a numpy generator seeded with
BOOTSTRAP_SEED, so the interval is reproducible), a method and its reference drawn at the same
seeds (paired), the statistic recomputed on each resample; the interval is the 2.5th and 97.5th
percentiles. With 3 seeds a resample is one of 10 multisets: the interval is coarse, and says so
by its width.

McNemar: of the examples on which the two disagree, b are right only for the method and c only for
the reference; under no difference each is Binomial(b + c, 1/2). Exact two-sided
p = min(1, 2 P(Bin(b + c, 1/2) <= min(b, c))) while b + c < EXACT_BELOW, else the chi-square
statistic with continuity correction (|b - c| - 1)^2 / (b + c) on 1 degree of freedom. Runs at
equal seeds are paired, and the discordant counts pooled over seeds (each seed's test set is
the same examples, each pair a separate draw of training).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

RESAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
EXACT_BELOW = 25
# a difference counts as exceeding the noise when McNemar's p is below this
ALPHA = 0.05


def bootstrap_interval(
    seeds: Sequence[int],
    statistic: Callable[[list[int]], float],
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """The LEVEL percentile interval of statistic(seeds resampled with replacement); None with
    fewer than 2 seeds."""
    if len(seeds) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    values = np.array([statistic([seeds[i] for i in draw]) for draw in draws], dtype=float)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def binomial_cdf(k: int, n: int) -> float:
    """P(Bin(n, 1/2) <= k)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def mcnemar(method: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """McNemar's test on paired per-example correctness (boolean arrays of equal length):
    b (right only for the method), c (only for the reference), the test used and p."""
    method, reference = np.asarray(method, bool), np.asarray(reference, bool)
    if method.shape != reference.shape:
        raise ValueError(f"paired test on {method.shape} and {reference.shape} examples")
    b = int((method & ~reference).sum())
    c = int((~method & reference).sum())
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "test": "exact", "p": 1.0}
    if n < EXACT_BELOW:
        return {"b": b, "c": c, "test": "exact", "p": min(1.0, 2 * binomial_cdf(min(b, c), n))}
    chi2 = (abs(b - c) - 1) ** 2 / n
    # the chi-square survival function with 1 degree of freedom
    return {"b": b, "c": c, "test": "chi-square", "p": math.erfc(math.sqrt(chi2 / 2))}


def pooled_mcnemar(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any] | None:
    """McNemar over the pairs (method, reference) of runs at equal seeds, their examples pooled;
    None without pairs."""
    if not pairs:
        return None
    method = np.concatenate([m for m, _ in pairs])
    reference = np.concatenate([r for _, r in pairs])
    return {**mcnemar(method, reference), "pairs": len(pairs), "examples": int(method.size)}


def verdict(result: dict[str, Any] | None) -> str:
    """The paired test in words."""
    if result is None:
        return "no paired test (no per-example test results at equal seeds)"
    size = "exceeds the noise" if result["p"] < ALPHA else "is within the noise"
    return (
        f"b = {result['b']} right only for the method, c = {result['c']} only for the reference "
        f"({result['pairs']} seed pairs, {result['examples']} paired examples), {result['test']} "
        f"McNemar p = {result['p']:.3g}: the difference {size} at the {ALPHA:g} level"
    )
