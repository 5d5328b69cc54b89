"""The first-order client of the full-update family (FedAvg, FedAdam, FedYogi, FedAdagrad): K
steps of local SGD from the server model, in the client's own storage, in train mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from hiso.optim.zo import evaluated_at

# Mean training loss of local step `step`'s batch at the model's current parameters, with
# autograd recording.
BatchLoss = Callable[[int], torch.Tensor]


@contextmanager
def training(model: nn.Module, seed: int, device: torch.device) -> Iterator[None]:
    """Train mode (dropout on) with dropout drawn from torch's global generator seeded with `seed`;
    the generator's state and the model's mode are restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    was_training = model.training
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.train()
        try:
            yield
        finally:
            model.train(was_training)


def sgd_client_update(
    params: Sequence[nn.Parameter],
    start: Sequence[torch.Tensor],
    client: Sequence[torch.Tensor],
    lr: float,
    num_steps: int,
    batch_loss: BatchLoss,
) -> float:
    """Copy `start` into `client` and take `num_steps` SGD steps there (`start` is not touched);
    return the loss of the first step (the loss at `start`)."""
    first = float("nan")
    for c, s in zip(client, start, strict=True):
        c.copy_(s)
    with evaluated_at(params, client):
        for step in range(num_steps):
            for p in params:
                p.grad = None
            loss = batch_loss(step)
            loss.backward()
            if step == 0:
                first = float(loss.detach())
            with torch.no_grad():
                for p in params:
                    p.data.add_(p.grad, alpha=-lr)
    for p in params:
        p.grad = None
    return first
