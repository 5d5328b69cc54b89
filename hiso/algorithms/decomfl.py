"""DeComFL (FedDisco): scalar-only federated ZO-SGD along Gaussian directions; no optimizer state
beyond the model (and an optional client momentum)."""

from __future__ import annotations

from hiso.algorithms.base import register
from hiso.algorithms.scalar import ScalarOnly


@register
class DeComFL(ScalarOnly):
    name = "decomfl"
