"""A small CNN for 8x8 single-channel images (scikit-learn's digits)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv3x3 -> ReLU -> pool -> conv3x3 -> ReLU -> pool -> linear -> ReLU -> linear.

    With channels=8 and hidden=32 it has 2,050 parameters for 8x8 inputs and 10 classes.
    """

    def __init__(
        self, channels: int = 8, hidden: int = 32, num_classes: int = 10, side: int = 8
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * (side // 4) ** 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
