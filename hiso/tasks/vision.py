"""Image classification on scikit-learn's bundled 8x8 digits (1,797 images, 10 classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from hiso.tasks.base import Batch, Task

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class ImageData:
    """(images, labels) of the training and held-out splits."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    @property
    def num_train(self) -> int:
        return len(self.train[1])


class ImageClassification(Task):
    def __init__(self, data: ImageData, eval_batch_size: int) -> None:
        self._train_x = torch.as_tensor(data.train[0], dtype=torch.float32)
        self._train_y = torch.as_tensor(data.train[1], dtype=torch.long)
        self._test_x = torch.as_tensor(data.test[0], dtype=torch.float32)
        self._test_y = torch.as_tensor(data.test[1], dtype=torch.long)
        self.eval_batch_size = eval_batch_size

    @property
    def num_train(self) -> int:
        return len(self._train_y)

    def train_labels(self) -> np.ndarray:
        return self._train_y.numpy()

    def batch(self, indices: Sequence[int], device: torch.device) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {
            "images": self._train_x[index].to(device),
            "labels": self._train_y[index].to(device),
        }

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch["images"]).float()
        return F.cross_entropy(logits, batch["labels"], reduction="none")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        total_loss, correct = 0.0, 0
        for start in range(0, len(self._test_y), self.eval_batch_size):
            x = self._test_x[start : start + self.eval_batch_size].to(device)
            y = self._test_y[start : start + self.eval_batch_size].to(device)
            logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == y).sum())
        n = len(self._test_y)
        return {"test_loss": total_loss / n, "test_accuracy": correct / n}


def read_digits(max_train: int | None = None, max_test: int | None = None) -> ImageData:
    """The digits scaled to [0, 1], with a fixed stratified 80/20 train/test split, each split
    cut to its first max_train / max_test images."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return ImageData(
        (x_train[:max_train], y_train[:max_train]), (x_test[:max_test], y_test[:max_test])
    )
