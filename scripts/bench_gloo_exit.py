"""How two gloo processes end when one leaves with an error while the other still talks to it.

    python scripts/bench_gloo_exit.py [--launches N] [--timeout S]

Each launch starts two real processes in one gloo group (torch.distributed, TCP on 127.0.0.1),
three all-reduces of 8 MB, then process 0 exits with code 74 (an error of its own, as hiso-run's
unwritable output) while process 1 starts another all-reduce, fails (the peer is gone) and exits
with code 3. The modes differ only in who destroys the process group before exiting:

- neither: both exit holding the group (hiso-run's error paths before they called
  `Processes.leave`);
- leaver: process 0 destroys it, process 1 does not;
- both: each destroys it (hiso-run now: `Processes.leave` on every way out).

and `close`: no error, both leave together (barrier, destroy: `Processes.close`). Printed: per
mode, how often each pair of exit codes came (-6: killed by SIGABRT, "terminate called without
an active exception" in gloo's teardown; 124: no exit within --timeout, a process stuck in the
collective, whose timeout is hiso-run's two hours).
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys

MODES = ("neither", "leaver", "both", "close")

CHILD = """
import sys, torch, torch.distributed as dist
rank, mode, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
t = torch.ones(2_000_000)
for _ in range(3):
    dist.all_reduce(t)
if mode == "close":
    dist.barrier()
    dist.destroy_process_group()
    sys.exit(0)
if rank == 0:
    if mode in ("leaver", "both"):
        dist.destroy_process_group()
    sys.exit(74)
try:
    dist.all_reduce(t)
except RuntimeError:
    if mode == "both":
        dist.destroy_process_group()
    sys.exit(3)
"""


def launch(mode: str, timeout: float) -> tuple[int, int]:
    port = str(random.randrange(20000, 60000))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(rank), mode, port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for rank in (0, 1)
    ]
    codes = []
    for child in children:
        try:
            codes.append(child.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            codes.append(124)
    return codes[0], codes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=30, help="launches per mode")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per launch")
    args = parser.parse_args()
    counts = {mode: collections.Counter[tuple[int, int]]() for mode in MODES}
    for _ in range(args.launches):  # modes interleaved, so load affects each alike
        for mode in MODES:
            counts[mode][launch(mode, args.timeout)] += 1
    print("| mode | launches | exit codes (process 0, process 1): count |")
    print("|---|---|---|")
    for mode in MODES:
        shown = ", ".join(f"{a}, {b}: {n}" for (a, b), n in sorted(counts[mode].items()))
        print(f"| {mode} | {args.launches} | {shown} |")


if __name__ == "__main__":
    main()
