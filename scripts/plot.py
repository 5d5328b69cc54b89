"""Plot several runs' curves on shared axes.

    python scripts/plot.py RUN_DIR [RUN_DIR ...] -o out.png [--labels a b ...] [--title T]

Each RUN_DIR needs a metrics.jsonl. A run's default label is its algorithm and the config keys
whose values differ between the runs (from RUN_DIR/.hydra/config.yaml), or without saved configs
its directory name; the figure's footer gives the hyperparameters the runs share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hiso.tracking import plot_runs, read_jsonl
from hiso.tracking.labels import (
    hyperparameter_line,
    overridden_keys,
    overrides,
    run_config,
    run_labels,
    varying_keys,
)


def labels_and_footer(run_dirs: list[Path]) -> tuple[list[str], str]:
    """A label per run (what differs between the runs, with the algorithm; the directory name
    for a run without a saved config) and the hyperparameter line of what they share."""
    configs = [run_config(run_dir) for run_dir in run_dirs]
    overridden = set().union(*(overridden_keys(overrides(run_dir)) for run_dir in run_dirs))
    labels = [
        label if config else run_dir.resolve().name
        for label, config, run_dir in zip(
            run_labels(configs, overridden), configs, run_dirs, strict=True
        )
    ]
    saved = [config for config in configs if config]
    footer = hyperparameter_line(saved[0], varying_keys(saved, overridden)) if saved else ""
    return labels, footer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plot runs' curves on shared axes.")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--labels", nargs="+", help="one legend label per RUN_DIR")
    parser.add_argument("--title", default=None, help="figure title (default: the PNG's name)")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.run_dirs):
        parser.error(f"--labels got {len(args.labels)} labels for {len(args.run_dirs)} RUN_DIRs")
    for run_dir in args.run_dirs:
        if not (run_dir / "metrics.jsonl").is_file():
            parser.error(f"{run_dir / 'metrics.jsonl'} does not exist")
    labels, footer = labels_and_footer(args.run_dirs)
    runs: dict[str, list[dict]] = {}
    for label, run_dir in zip(args.labels or labels, args.run_dirs, strict=True):
        key = label if label not in runs else f"{label} ({run_dir})"
        runs[key] = read_jsonl(run_dir / "metrics.jsonl")
    plot_runs(runs, args.output, args.title or args.output.stem, footer or None)
    print(args.output)


if __name__ == "__main__":
    main()
