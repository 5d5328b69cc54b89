"""Client shards: IID, or the DeComFL authors' Dirichlet split over labels in equal sizes."""

from __future__ import annotations

import numpy as np

from hiso.schema import ConfigError
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
    """The label split of the DeComFL/HiSo authors' code (ZidongLiu/DeComFL,
    cezo_fl/util/data_split.py), drawn from this run's seed; applied here to every labelled task,
    images included (their code splits images IID).

    Each client i draws class proportions q_i ~ Dir(alpha * prior), prior being the class
    frequencies (NOT alpha * C * prior: the concentrations sum to alpha; the papers use alpha = 1).
    Each class is then cut among the clients in proportion to their draws for it, and the shards
    are balanced to num_examples // num_clients each: clients above that size give up random
    examples, which are shuffled and handed to the clients below it (what is left over is unused).
    """
    rng = numpy_generator(seed, "partition", "dirichlet")
    classes, counts = np.unique(labels, return_counts=True)
    q = rng.dirichlet(alpha * counts / counts.sum(), size=num_clients)
    if not np.isfinite(q).all():
        raise ValueError(f"Dirichlet({alpha}) drew non-finite class proportions")
    held: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for j, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        # every draw for this class can underflow to 0 at a tiny alpha: then cut it evenly
        weights = q[:, j] if q[:, j].sum() > 0 else np.ones(num_clients)
        cuts = np.floor(np.cumsum(weights) / weights.sum() * len(members)).astype(int)
        for i, part in enumerate(np.split(members, cuts[:-1])):
            held[i].append(part)
    shards = [rng.permutation(np.concatenate(parts)) for parts in held]
    size = len(labels) // num_clients
    spare = rng.permutation(np.concatenate([s[size:] for s in shards]))
    for i, shard in enumerate(shards):
        need = size - len(shard)
        if need > 0:
            shards[i], spare = np.concatenate([shard, spare[:need]]), spare[need:]
        else:
            shards[i] = shard[:size]
    return [np.sort(s).astype(np.int64) for s in shards]
