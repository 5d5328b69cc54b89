"""Image classification on scikit-learn's bundled 8x8 digits (1,797 images, 10 classes)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hiso.caches import cache_root
from hiso.data.validation import carve_validation
from hiso.tasks.base import Batch, HeldOut, Task
from hiso.tracking.atomic import atomic_file

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


Images = tuple[np.ndarray, np.ndarray]  # (images, class ids)


@dataclass(frozen=True)
class ImageData:
    """The training images left after carving the validation split, and the held-out splits."""

    train: Images
    heldout: dict[HeldOut, Images]

    @property
    def num_train(self) -> int:
        return len(self.train[1])


class ImageClassification(Task):
    def __init__(self, data: ImageData, eval_batch_size: int) -> None:
        self._train_x = torch.as_tensor(data.train[0], dtype=torch.float32)
        self._train_y = torch.as_tensor(data.train[1], dtype=torch.long)
        self._heldout = {
            split: (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))
            for split, (x, y) in data.heldout.items()
            if len(y)
        }
        self.eval_batch_size = eval_batch_size

    @property
    def num_train(self) -> int:
        return len(self._train_y)

    def train_labels(self) -> np.ndarray:
        return self._train_y.numpy()

    def heldout_splits(self) -> tuple[HeldOut, ...]:
        return tuple(self._heldout)

    def heldout_size(self, split: HeldOut) -> int:
        return len(self._heldout[split][1])

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
    def evaluate_examples(
        self, model: nn.Module, device: torch.device, split: HeldOut
    ) -> tuple[dict[str, float], np.ndarray]:
        images, labels = self._heldout[split]
        total_loss, flags = 0.0, []
        for start in range(0, len(labels), self.eval_batch_size):
            x = images[start : start + self.eval_batch_size].to(device)
            y = labels[start : start + self.eval_batch_size].to(device)
            logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            flags.append((logits.argmax(dim=1) == y).cpu().numpy())
        correct = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
        n = len(labels)
        return {"loss": total_loss / n, "accuracy": int(correct.sum()) / n}, correct


def read_digits(
    max_train: int | None = None,
    max_test: int | None = None,
    validation_size: int | None = None,
    validation_seed: int = 0,
) -> ImageData:
    """The digits scaled to [0, 1], with a fixed stratified 80/20 train/test split, each cut to
    its first max_train / max_test images; the validation split is carved from the training
    images (dataset.validation_size)."""
    images, target = digits_file()
    train, test = digits_split(target)
    x_train, x_test, y_train, y_test = images[train], images[test], target[train], target[test]
    x_train, y_train = x_train[:max_train], y_train[:max_train]
    kept, carved = carve_validation(len(y_train), validation_size, validation_seed)
    return ImageData(
        (x_train[kept], y_train[kept]),
        {
            "validation": (x_train[carved], y_train[carved]),
            "test": (x_test[:max_test], y_test[:max_test]),
        },
    )


def digits_file() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits.csv.gz, read as its load_digits reads it (64 pixels of 0-16 and the
    label per row), without importing scikit-learn (about 1-2 s a process): images (N, 1, 8, 8)
    in [0, 1] and labels."""
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None and spec.submodule_search_locations is not None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",")
    images = (data[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32)[:, None]
    return images, data[:, -1].astype(int)


def digits_split(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The train and test indices of scikit-learn's stratified train_test_split (test fraction
    0.2, random_state 0), computed once per scikit-learn version and kept in hiso-run's cache."""
    version = importlib.metadata.version("scikit-learn")
    path = cache_root() / f"digits-split-sklearn-{version}.npz"
    try:
        with np.load(path) as saved:
            return saved["train"], saved["test"]
    except (OSError, ValueError, KeyError):
        pass
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(target)),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=target,
    )
    with contextlib.suppress(OSError):  # a cache that cannot be written costs time only
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as file:
            np.savez(file, train=train, test=test)
    return train, test
