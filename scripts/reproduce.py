"""Reproduce the paper-style comparisons through the real Hydra config.

    python scripts/reproduce.py digits [--seeds 0 1 2] [--jobs 2] [--out DIR] [--results DIR]
    python scripts/reproduce.py movie [--seeds 0] [--jobs 2] [OVERRIDES...]

`digits` runs DeComFL, HiSo and FedAvg on the 8x8 digits CNN (config `+experiment=digits`, tuned
defaults from hiso/conf/tuning/*_digits.yaml); `movie` runs DeComFL and HiSo on SmolLM2-135M and
the movie-review sentences (`+experiment=movie`). Every (algorithm, seed) run goes under
OUT/<algo>-s<seed>; the script then writes RESULTS/<name>.md, .json and .png and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hiso.cli import run
from hiso.config import compose_config
from hiso.tracking import plot_runs, read_jsonl

COMPARISONS = {
    "digits": (("decomfl", "hiso", "fedavg"), ("+experiment=digits", "logger=none")),
    "movie": (("decomfl", "hiso"), ("+experiment=movie", "logger=none")),
}
TITLES = {
    "digits": "digits CNN: DeComFL vs HiSo vs FedAvg",
    "movie": "SmolLM2-135M on movie reviews: DeComFL vs HiSo",
}


def run_one(overrides: Sequence[str], run_dir: Path) -> dict[str, Any]:
    """Run one configuration to completion under run_dir and return its summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return run(compose_config(overrides), run_dir)


def run_grid(
    algos: Sequence[str],
    base: Sequence[str],
    seeds: Sequence[int],
    jobs: int,
    out: Path,
    extra: Sequence[str],
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (algorithm, seed) run of a comparison, up to `jobs` processes at a time."""
    keys = [(algo, seed) for algo in algos for seed in seeds]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {
            (algo, seed): pool.submit(
                run_one,
                [*base, f"algo={algo}", f"seed={seed}", *extra],
                out / f"{algo}-s{seed}",
            )
            for algo, seed in keys
        }
        return {key: futures[key].result() for key in keys}


def aggregate(
    summaries: dict[tuple[str, int], dict[str, Any]], algos: Sequence[str], seeds: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Per algorithm: mean and per-seed final accuracy, rounds to target, bytes, seconds/round."""
    table: dict[str, dict[str, Any]] = {}
    for algo in algos:
        runs = [summaries[(algo, seed)] for seed in seeds]
        accuracies = [r["final_accuracy"] for r in runs]
        reached = [r["rounds_to_target"] for r in runs]
        table[algo] = {
            "rounds": runs[0]["rounds"],
            "initial_accuracy": statistics.fmean(r["initial_accuracy"] for r in runs),
            "target_accuracy": runs[0]["target_accuracy"],
            "mean_final_accuracy": statistics.fmean(accuracies),
            "final_accuracy": dict(zip(map(str, seeds), accuracies, strict=True)),
            "rounds_to_target": dict(zip(map(str, seeds), reached, strict=True)),
            "total_bytes": statistics.fmean(r["total_bytes"] for r in runs),
            "seconds_per_round": statistics.fmean(r["seconds_per_round"] for r in runs),
        }
    return table


def markdown(table: dict[str, dict[str, Any]]) -> str:
    first = next(iter(table.values()))
    target = f"{first['target_accuracy']:.0%}" if first["target_accuracy"] else "target"
    lines = [
        f"| algorithm | acc. at round 0 | final acc. after {first['rounds']} rounds, mean "
        f"| per seed | rounds to {target} per seed | total bytes | s/round |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, row in table.items():
        per_seed = ", ".join(f"{a:.2%}" for a in row["final_accuracy"].values())
        reached = ", ".join(str(r) for r in row["rounds_to_target"].values())
        lines.append(
            f"| {algo} | {row['initial_accuracy']:.2%} | {row['mean_final_accuracy']:.2%} "
            f"| {per_seed} | {reached} "
            f"| {row['total_bytes']:,.0f} | {row['seconds_per_round']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def compare(args: argparse.Namespace) -> None:
    name: str = args.command
    algos, base = COMPARISONS[name]
    out: Path = args.out or Path("outputs/reproduce") / name
    summaries = run_grid(algos, base, args.seeds, args.jobs, out, args.overrides)
    table = aggregate(summaries, algos, args.seeds)
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python scripts/reproduce.py", name, *args.argv])
    text = f"`{command}`\n\n" + markdown(table)
    (results / f"{name}.md").write_text(text, encoding="utf-8")
    (results / f"{name}.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    seed = args.seeds[0]
    curves = {
        f"{algo} (seed {seed})": read_jsonl(out / f"{algo}-s{seed}" / "metrics.jsonl")
        for algo in algos
    }
    plot_runs(curves, results / f"{name}.png", TITLES[name])
    print(text, end="")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reproduce the papers' comparisons.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (algos, _) in COMPARISONS.items():
        p = sub.add_parser(name, help=f"{', '.join(algos)}: {TITLES[name]}")
        p.add_argument(
            "--seeds", nargs="+", type=int, default=[0, 1, 2] if name == "digits" else [0]
        )
        p.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
        p.add_argument("--out", type=Path, default=None, help="default outputs/reproduce/NAME")
        p.add_argument("--results", type=Path, default=Path("results"))
        p.add_argument(
            "overrides",
            nargs="*",
            help="extra Hydra overrides for every run, e.g. federation.rounds=300",
        )
    args = parser.parse_args(argv)
    args.argv = (argv if argv is not None else sys.argv[1:])[1:]
    compare(args)


if __name__ == "__main__":
    main()
