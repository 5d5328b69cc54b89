"""The validation split: examples carved from the training data for model selection.

The test split is only ever reported; the best round, the learning rate of a sweep and the tuning
files are chosen on this split. It is drawn once per dataset by a generator seeded by
`dataset.validation_seed` (not the run seed), so runs with different seeds select on the same
examples, and it is removed before the training examples are split over clients.
"""

from __future__ import annotations

import numpy as np

from hiso.schema import ConfigError
from hiso.seeding import numpy_generator

AUTO_MAX = 500
AUTO_FRACTION = 0.1


def validation_size(setting: int | None, num_train: int) -> int:
    """dataset.validation_size for `num_train` training examples: null = min(500, 10%)."""
    size = min(AUTO_MAX, int(AUTO_FRACTION * num_train)) if setting is None else setting
    if size >= num_train:
        raise ConfigError(
            "dataset.validation_size",
            setting,
            f"fewer than the {num_train} training examples (0 for no validation split)",
        )
    return size


def carve_validation(
    num_train: int, setting: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices), both sorted, partitioning range(num_train)."""
    size = validation_size(setting, num_train)
    order = numpy_generator(seed, "validation").permutation(num_train)
    return np.sort(order[size:]), np.sort(order[:size])
