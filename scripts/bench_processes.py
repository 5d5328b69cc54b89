"""Round time with several processes against one, and one process before and after a change.

    python scripts/bench_processes.py [--rounds N] [--baseline DIR] [--out FILE] [OVERRIDES...]

Runs the real `hiso-run` on digits with 4 sampled clients (DeComFL, the paper's CNN setting,
K = 4, P = 20), each run alone and the rows interleaved over --repeats, and prints seconds per
round (summary.json's median; then the median and range over repeats) of: one process with 2 torch
threads, one process with 1 thread, and 2 processes of 1 thread each
under `accelerate launch` (gloo). With --baseline DIR (another checkout, e.g. a worktree of the
commit before a change) the one-process runs are repeated with that checkout's code, so a change's
cost on the one-process path shows in the same table. The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTING = (
    "+experiment=decomfl-paper-cnn",
    "algo=decomfl",
    "federation.clients_per_round=4",
    "federation.eval_every=0",
    "checkpoint.every=0",
    "logger=none",
    "device=cpu",
)


def run(code: Path, processes: int, threads: int, rounds: int, extra: list[str]) -> float:
    """Seconds per round (summary.json's median) of one run of the setting."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        args = [*SETTING, f"federation.rounds={rounds}", f"threads={threads}", *extra]
        args.append(f"hydra.run.dir={tmp}/run")
        if processes == 1:
            command = [str(bin_dir / "hiso-run"), *args]
        else:
            accelerate = shutil.which("accelerate", path=str(bin_dir))
            assert accelerate, "accelerate is not installed beside this interpreter"
            command = [accelerate, "launch", "--config_file"]
            command += [str(ROOT / "conf/accelerate/one-machine.yml")]
            command += ["--num_processes", str(processes), "-m", "hiso.cli", *args]
        env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp)
        if done.returncode:
            raise SystemExit(f"bench_processes: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return json.loads(Path(tmp, "run", "summary.json").read_text())["seconds_per_round"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (median, range)")
    parser.add_argument("--baseline", type=Path, help="another checkout for the one-process rows")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    rows = [("this checkout", ROOT, 1, 2), ("this checkout", ROOT, 1, 1)]
    rows.append(("this checkout", ROOT, 2, 1))
    if args.baseline:
        rows += [(f"baseline {args.baseline}", args.baseline, 1, t) for t in (2, 1)]
    lines = [
        f"digits CNN, DeComFL, 4 sampled clients, K = 4, P = 20, {args.rounds} rounds, "
        f"median of {args.repeats} runs",
        "",
        "| code | processes | threads each | s/round (median) | range |",
        "|---|---|---|---|---|",
    ]
    # rows interleaved, one run of each per repeat, so a drift of the machine's speed over the
    # benchmark spreads over every row instead of favouring the first ones
    times: list[list[float]] = [[] for _ in rows]
    for repeat in range(args.repeats):
        for (name, code, processes, threads), row_times in zip(rows, times, strict=True):
            row_times.append(run(code, processes, threads, args.rounds, args.overrides))
            print(f"repeat {repeat + 1}: {name}, {processes} x {threads}: {row_times[-1]:.4f}")
    for (name, _, processes, threads), row_times in zip(rows, times, strict=True):
        spread = f"{min(row_times):.4f}-{max(row_times):.4f}"
        median = statistics.median(row_times)
        lines.append(f"| {name} | {processes} | {threads} | {median:.4f} | {spread} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
