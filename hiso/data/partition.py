"""Client shards: IID, or Dirichlet over labels balanced to equal sizes."""

from __future__ import annotations

import numpy as np

from hiso.config import ConfigError
from hiso.seeding import numpy_generator


def check_shard_size(num_examples: int, num_clients: int, batch_size: int) -> None:
    """Both partitions give every client num_examples // num_clients examples: that must be at
    least one batch, or a client's batch repeats examples (or, with none, never fills)."""
    size = num_examples // num_clients
    if size >= batch_size:
        return
    most = num_examples // batch_size
    remedy = (
        f"use at most {most} clients or a smaller optim.batch_size"
        if most >= 1
        else "use a smaller optim.batch_size or more training examples"
    )
    raise ConfigError(
        "federation.num_clients",
        num_clients,
        f"a count that leaves every client at least optim.batch_size={batch_size} examples: "
        f"{num_examples} training examples (what the validation split leaves) over "
        f"{num_clients} clients give {size} each; {remedy}",
    )


def iid_partition(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    rng = numpy_generator(seed, "partition", "iid")
    order = rng.permutation(num_examples)
    size = num_examples // num_clients
    return [np.sort(order[c * size : (c + 1) * size]) for c in range(num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Each client draws class proportions q ~ Dir(alpha * C * prior) (prior: the class
    frequencies, so a uniform prior gives Dir(alpha)), then takes num_examples // num_clients
    examples by those proportions; where a class runs out, the shortfall comes from the classes
    with the most examples left. Every client ends with the same number of examples."""
    rng = numpy_generator(seed, "partition", "dirichlet")
    classes, counts = np.unique(labels, return_counts=True)
    prior = counts / counts.sum()
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    size = len(labels) // num_clients
    shards = []
    for _ in range(num_clients):
        q = rng.dirichlet(alpha * len(classes) * prior)
        if not np.isfinite(q).all():
            raise ValueError(f"Dirichlet({alpha}) drew non-finite class proportions {q}")
        want = np.floor(q * size).astype(int)
        for j in np.argsort(-(q * size - want))[: size - want.sum()]:
            want[j] += 1
        take = np.minimum(want, [len(p) for p in pools])
        for _ in range(size - int(take.sum())):  # the pools hold at least `size` examples
            left = np.array([len(p) for p in pools]) - take
            take[int(np.argmax(left))] += 1
        shard = []
        for j, n in enumerate(take):
            shard.extend(pools[j][:n])
            del pools[j][:n]
        shards.append(np.sort(np.asarray(shard, dtype=np.int64)))
    return shards
