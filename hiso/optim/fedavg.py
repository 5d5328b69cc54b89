"""FedAvg: clients run K steps of local SGD from the server model; the server averages the
client models. Clients train in their own storage, never in the server's tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hiso.optim.schedule import LRSchedule
from hiso.optim.zo import evaluated_at

# Mean training loss of one batch at the model's current parameters, with autograd recording.
BatchLoss = Callable[[int], torch.Tensor]


class FedAvg:
    def __init__(self, lr: LRSchedule) -> None:
        self.lr = lr

    def client_update(
        self,
        rnd: int,
        params: Sequence[torch.nn.Parameter],
        server: Sequence[torch.Tensor],
        client: Sequence[torch.Tensor],
        num_steps: int,
        batch_loss: BatchLoss,
    ) -> float:
        """Copy the server model into `client`, take `num_steps` SGD steps on it there; return
        the loss of the first step (the loss at the server model)."""
        first, lr = float("nan"), self.lr.at(rnd)
        for c, s in zip(client, server, strict=True):
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

    @staticmethod
    def average_into(server: Sequence[torch.Tensor], total: Sequence[torch.Tensor], n: int) -> None:
        """server <- total / n, the mean of the n client models summed into `total`."""
        for s, t in zip(server, total, strict=True):
            torch.div(t, n, out=s)
