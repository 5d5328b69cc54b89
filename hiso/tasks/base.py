"""What the federation needs from a task: examples to split over clients, a per-example loss on
any batch of them, and a deterministic evaluation on each held-out split (validation, test)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

Batch = dict[str, torch.Tensor]


HeldOut = str  # "validation" (carved from the training data, for selection) or "test" (reported)


class Task(ABC):
    """A supervised task over a fixed training set and fixed held-out splits.

    `loss` returns one loss per example so the simulator can evaluate several clients' batches in
    one concatenated forward and split the result back per client. It never calls backward; the
    caller decides whether gradients are recorded (first-order baselines) or not (ZO).
    """

    @property
    @abstractmethod
    def num_train(self) -> int:
        """Number of training examples (indices 0..num_train-1)."""

    @abstractmethod
    def train_labels(self) -> np.ndarray | None:
        """Class id per training example for label partitions; None when the task has no classes."""

    @abstractmethod
    def batch(self, indices: Sequence[int], device: torch.device) -> Batch:
        """Collate the training examples at `indices`, in order, onto `device`."""

    def lengths(self, indices: Sequence[int]) -> np.ndarray | None:
        """Tokens per training example at `indices`, for grouping forwards by length; None when
        every example costs the same."""
        return None

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example training loss, shape [len(batch)], float32."""

    @abstractmethod
    def heldout_splits(self) -> tuple[HeldOut, ...]:
        """The held-out splits this task holds: "test", and "validation" unless it is empty."""

    @abstractmethod
    def heldout_size(self, split: HeldOut) -> int:
        """Number of examples of a held-out split."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device, split: HeldOut) -> dict[str, float]:
        """Deterministic metrics on the whole held-out `split`: at least `loss` and `accuracy`
        (for generative tasks `accuracy` is the task's score, e.g. F1)."""
        return self.evaluate_examples(model, device, split)[0]

    @abstractmethod
    def evaluate_examples(
        self, model: nn.Module, device: torch.device, split: HeldOut
    ) -> tuple[dict[str, float], np.ndarray | None]:
        """`evaluate`'s metrics and which examples it got right (None for a task without
        per-example correctness, e.g. SQuAD's F1)."""
