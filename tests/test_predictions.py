"""Per-example correctness survives encode/decode bit for bit, also for partial bytes."""

import numpy as np
import pytest

from hiso.tracking.predictions import decode, encode


@pytest.mark.parametrize("n", [1, 7, 8, 9, 2000])
def test_round_trip(n: int) -> None:
    flags = np.random.default_rng(n).random(n) < 0.7
    entry = encode(flags, round_=3)
    assert entry["n"] == n and entry["round"] == 3
    assert len(entry["bits"]) <= 4 * ((n + 7) // 8 + 2) // 3
    np.testing.assert_array_equal(decode(entry), flags)
