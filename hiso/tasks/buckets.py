"""Length buckets: split a batch of variable-length examples into a few forwards of similar
length, so that padding (which costs as much as real tokens) is mostly avoided.

Per-example losses do not depend on which other examples share a forward (left padding is masked
and positions count real tokens only), so bucketing changes speed and float rounding in the last
bits, never the result beyond that.
"""

from __future__ import annotations

import numpy as np


def length_buckets(lengths: np.ndarray, max_buckets: int, call_cost: int) -> list[np.ndarray]:
    """Positions into `lengths` split into at most `max_buckets` groups of consecutive lengths
    (in sorted order) minimising sum over groups of (size * longest + call_cost): the padded
    tokens the forwards process plus a fixed price per forward, in tokens. Ties go to fewer
    groups. Each group lists its positions in ascending order; groups go from short to long."""
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    longest = np.asarray(lengths, dtype=np.float64)[order]
    groups = max(1, min(max_buckets, n))
    # cost[g, j]: least cost of the first j sorted examples in exactly g + 1 groups
    cost = np.full((groups, n + 1), np.inf)
    start = np.zeros((groups, n + 1), dtype=np.int64)
    cost[0, 1:] = np.arange(1, n + 1) * longest + call_cost
    for g in range(1, groups):
        for j in range(g + 1, n + 1):
            # the last group is sorted positions i..j-1, padded to longest[j - 1]
            i = np.arange(g, j)
            options = cost[g - 1, g:j] + (j - i) * longest[j - 1] + call_cost
            best = int(np.argmin(options))
            cost[g, j], start[g, j] = options[best], g + best
    g = int(np.argmin(cost[:, n]))  # the first minimum: the fewest groups
    out = []
    j = n
    while g >= 0:
        i = int(start[g, j]) if g > 0 else 0
        out.append(np.sort(order[i:j]))
        g, j = g - 1, i
    return out[::-1]
