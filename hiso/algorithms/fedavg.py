"""FedAvg: K local SGD steps per sampled client in train mode (dropout seeded by run seed, round and
client), the server averages the client models (a full float32 model both ways)."""

from __future__ import annotations

import torch

from hiso.algorithms.base import register
from hiso.algorithms.full_update import FullUpdate
from hiso.optim.sgd import sgd_client_update, training
from hiso.seeding import derive_seed


@register
class FedAvg(FullUpdate):
    name = "fedavg"
    uses_directions = False

    def client_update(
        self, rnd: int, client: int, batches: list[list[int]], out: list[torch.Tensor]
    ) -> float:
        s = self.space
        task = s.forwards.task
        collated = [task.batch(ix, s.device) for ix in batches]

        def batch_loss(step: int) -> torch.Tensor:
            with s.autocast():
                return task.loss(s.model, collated[step]).mean()

        lr = s.lr_schedule().at(rnd)
        with training(s.model, derive_seed(s.cfg.seed, "dropout", rnd, client), s.device):
            return sgd_client_update(s.params, s.master, out, lr, len(batches), batch_loss)
