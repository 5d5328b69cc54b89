"""What FedKSeed's rebuild costs a language model a round: the integer sums against a pass over
every seed with A_j != 0.

    python scripts/bench_seed_pool.py [--params 134515008] [--rounds 6] [--steps 2]

Parameters of SmolLM2-135M's size (one tensor of --params float32 values; the directions' cost is
per value), a pool of 4096 seeds, --steps new seeds a round (two sampled clients, one local step
each). Prints per round the seconds of the integer sums' update and write (hiso/optim/pool_sums.py)
and of one direction drawn and added in float32, the unit of a full pass: a pass at round r of
such a run draws about steps * r of them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hiso.optim.directions import DirectionStream
from hiso.optim.pool_sums import PoolSums
from hiso.optim.seed_pool import candidate_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=int, default=134_515_008)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x0 = [torch.randn(args.params, generator=torch.Generator().manual_seed(0))]
    params = [torch.empty_like(x0[0])]
    seeds = candidate_seeds(0, 4096)
    sums = PoolSums(seeds, x0)
    stream = DirectionStream([x0[0].shape], x0[0].device, [0])
    rng = np.random.default_rng(0)
    accumulated = np.zeros(len(seeds), dtype=np.float32)
    print(f"{args.params:,} parameters, 4096 seeds, {args.steps} new seeds a round, 1 thread")
    for r in range(1, args.rounds + 1):
        accumulated[rng.choice(len(seeds), size=args.steps, replace=False)] += rng.normal(
            size=args.steps
        ).astype(np.float32)
        start = time.perf_counter()
        sums.update(accumulated)
        sums.write(params, x0, 1e-5)
        integer = time.perf_counter() - start
        start = time.perf_counter()
        params[0].add_(stream.gaussian(int(seeds[0]), 0, 0), alpha=-1e-5)
        one = time.perf_counter() - start
        nonzero = int(np.count_nonzero(accumulated))
        print(
            f"round {r}: integer sums {integer:.2f} s; one direction drawn and added {one:.2f} s, "
            f"a full pass over the {nonzero} seeds with A_j != 0 about {nonzero * one:.1f} s"
        )


if __name__ == "__main__":
    main()
