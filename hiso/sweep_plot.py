"""Plot runs' curves on shared axes.

    hiso-plot RUN_DIR|SWEEP_DIR [...] -o out.png [--labels a b ...] [--title T]
    (or python scripts/plot.py ...)

A SWEEP_DIR stands for every run below it (each directory with a metrics.jsonl). A run's default
label is its algorithm and the config keys whose values differ between the runs (from
RUN_DIR/.hydra/config.yaml), or without saved configs its directory name; the figure's footer gives
the hyperparameters the runs share. When runs differ by seed (and labels are not given), the runs
that share every other key are drawn as one curve: validation accuracy's mean over the seeds with
their min-max band, against rounds and against bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hiso.script_errors import reported
from hiso.tracking.labels import (
    hyperparameter_line,
    overridden_keys,
    overrides,
    run_config,
    run_labels,
    varying_keys,
)
from hiso.tracking.plots import plot_bands, plot_runs
from hiso.tracking.records import read_jsonl
from hiso.tracking.unwritten import writing

METRICS = "metrics.jsonl"


def labels_and_footer(
    run_dirs: list[Path], leave_out: tuple[str, ...] = ()
) -> tuple[list[str], str]:
    """A label per run (what differs between the runs but the `leave_out` keys, with the
    algorithm; the directory name for a run without a saved config) and the hyperparameter line
    of what they share."""
    configs = [run_config(run_dir) for run_dir in run_dirs]
    shown = [{k: v for k, v in config.items() if k not in leave_out} for config in configs]
    overridden = set().union(*(overridden_keys(overrides(run_dir)) for run_dir in run_dirs))
    labels = [
        label if config else run_dir.resolve().name
        for label, config, run_dir in zip(
            run_labels(shown, overridden), configs, run_dirs, strict=True
        )
    ]
    saved = [config for config in configs if config]
    footer = hyperparameter_line(saved[0], varying_keys(saved, overridden)) if saved else ""
    return labels, footer


def run_dirs_of(paths: list[Path]) -> list[Path]:
    """Each path that holds a metrics.jsonl, and for any other directory every run below it."""
    found = []
    for path in paths:
        if (path / METRICS).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.rglob(METRICS))
    return list(dict.fromkeys(found))


def seeds_vary(run_dirs: list[Path]) -> bool:
    return "seed" in varying_keys([run_config(run_dir) for run_dir in run_dirs])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plot runs' curves on shared axes.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="RUN_DIR|SWEEP_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--labels", nargs="+", help="one legend label per run")
    parser.add_argument("--title", default=None, help="figure title (default: the PNG's name)")
    args = parser.parse_args(argv)
    for path in args.paths:
        if not path.is_dir():
            parser.error(f"{path} is not a directory (a run's or a sweep's)")
    run_dirs = run_dirs_of(args.paths)
    if not run_dirs:
        parser.error(f"no {METRICS} in or below {', '.join(map(str, args.paths))}")
    if args.labels and len(args.labels) != len(run_dirs):
        parser.error(f"--labels got {len(args.labels)} labels for {len(run_dirs)} runs")
    title = args.title or args.output.stem
    if not args.labels and seeds_vary(run_dirs):
        labels, footer = labels_and_footer(run_dirs, leave_out=("seed",))
        groups: dict[str, list[list[dict]]] = {}
        for label, run_dir in zip(labels, run_dirs, strict=True):
            groups.setdefault(label, []).append(read_jsonl(run_dir / METRICS))
        counts = sorted({len(runs) for runs in groups.values()})
        seeds = f"mean and min-max over {'/'.join(map(str, counts))} seeds"
        with reported("hiso-plot"), writing("the figure", args.output):
            plot_bands({"": groups}, args.output, f"{title}: {seeds}\n{footer}".rstrip())
        print(args.output)
        return
    labels, footer = labels_and_footer(run_dirs)
    runs: dict[str, list[dict]] = {}
    for label, run_dir in zip(args.labels or labels, run_dirs, strict=True):
        key = label if label not in runs else f"{label} ({run_dir})"
        runs[key] = read_jsonl(run_dir / METRICS)
    with reported("hiso-plot"), writing("the figure", args.output):
        plot_runs(runs, args.output, title, footer or None)
    print(args.output)
