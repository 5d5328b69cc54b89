"""Plot several runs' curves on shared axes.

    python scripts/plot.py RUN_DIR [RUN_DIR ...] -o out.png [--labels a b ...] [--title T]

Each RUN_DIR needs a metrics.jsonl; a run's default label is its Hydra overrides
(RUN_DIR/.hydra/overrides.yaml) or, without any, the directory name.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from hiso.tracking import plot_runs, read_jsonl


def run_label(run_dir: Path) -> str:
    """The run's Hydra command-line overrides joined by spaces, else the directory name."""
    overrides = run_dir / ".hydra" / "overrides.yaml"
    items = OmegaConf.load(overrides) if overrides.is_file() else []
    return " ".join(str(item) for item in items) or run_dir.resolve().name


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
    labels = args.labels or [run_label(run_dir) for run_dir in args.run_dirs]
    runs: dict[str, list[dict]] = {}
    for label, run_dir in zip(labels, args.run_dirs, strict=True):
        key = label if label not in runs else f"{label} ({run_dir})"
        runs[key] = read_jsonl(run_dir / "metrics.jsonl")
    plot_runs(runs, args.output, args.title or args.output.stem)
    print(args.output)


if __name__ == "__main__":
    main()
