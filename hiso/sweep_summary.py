"""One table of a sweep's runs.

    hiso-summarize MULTIRUN_DIR [-o STEM]      (or python scripts/summarize.py)

Finds every run under MULTIRUN_DIR (a directory with a summary.json) and writes STEM.md and
STEM.csv (default MULTIRUN_DIR/sweep.md, .csv): one row per run with the config keys that vary
across the runs, status, final and best validation accuracy, test accuracy at the best round,
final test accuracy, total and paper bytes and seconds per round, sorted by what the sweep varied;
when runs differ by seed, STEM.md also holds each group of the other keys' mean ± sd over its
finished seeds. Text in a cell is escaped (a newline as \\n, a pipe as \\|), so a prompt keeps
the table whole. hiso/sweep_table.py writes the same table when a `-m` sweep ends.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
from pathlib import Path
from typing import Any

from hiso.reproduce.sweep import read_summary
from hiso.script_errors import reported
from hiso.tracking.curves import is_number
from hiso.tracking.labels import (
    hyperparameter_line,
    overridden_keys,
    overrides,
    run_config,
    show,
    varying_keys,
)
from hiso.tracking.records import human_bytes
from hiso.tracking.unwritten import writing

# (summary key, how the markdown shows it)
FIGURES = (
    ("status", "status"),
    ("round_reached", "rounds"),
    ("final_val_accuracy", "percent"),
    ("best_val_accuracy", "percent"),
    ("best_round", "count"),
    ("test_accuracy_at_best", "percent"),
    ("final_test_accuracy", "percent"),
    ("total_bytes", "bytes"),
    ("paper_bytes_hiso", "bytes"),
    ("paper_bytes_decomfl", "bytes"),
    ("seconds_per_round", "seconds"),
)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "percent" and is_number(value):
        return f"{100 * value:.2f}%"
    if kind == "bytes" and is_number(value):
        return human_bytes(value)
    if kind == "seconds" and is_number(value):
        return f"{value:.3g} s"
    return escape(show(value))


def escape(text: str) -> str:
    """Text as one markdown table cell: newlines written as \\n, pipes escaped."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "\\n")


def _order(values: list[Any]) -> tuple[tuple[int, Any], ...]:
    """Numbers by value before other values by text, so a column of mixed kinds still sorts."""
    return tuple((0, v) if is_number(v) else (1, str(v)) for v in values)


def sweep_rows(root: Path) -> tuple[list[str], list[dict[str, Any]], str]:
    """(the varying config keys, one row per run sorted by them, the shared hyperparameters)."""
    run_dirs = sorted(path.parent for path in root.rglob("summary.json"))
    configs = [run_config(run_dir) for run_dir in run_dirs]
    overridden = set().union(*(overridden_keys(overrides(run_dir)) for run_dir in run_dirs))
    keys = varying_keys(configs, overridden)
    rows = []
    for run_dir, config in zip(run_dirs, configs, strict=True):
        summary = read_summary(run_dir) or {}
        row: dict[str, Any] = {"run": run_dir.relative_to(root).as_posix()}
        row |= {key: config.get(key) for key in keys}
        row |= {key: summary.get(key) for key, _ in FIGURES}
        row["round_reached"] = summary.get("round_reached", summary.get("rounds"))
        rows.append(row)
    rows.sort(key=lambda row: (_order([row[key] for key in keys]), row["run"]))
    shared = hyperparameter_line(configs[0], keys) if configs else ""
    return keys, rows, shared


# the figures averaged over seeds
OVER_SEEDS = (
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy_at_best",
    "final_test_accuracy",
)


def over_seeds(keys: list[str], rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(the grouping keys, one row per group of the finished runs that share every varying key but
    the seed: its values, the seeds, then mean ± sd of each OVER_SEEDS figure in percent); no
    rows when the seed does not vary."""
    if "seed" not in keys:
        return [], []
    group_keys = [key for key in keys if key != "seed"]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "finished":
            groups.setdefault(tuple(show(row[key]) for key in group_keys), []).append(row)
    table = []
    for values, members in groups.items():
        cells = [*values, ", ".join(show(m["seed"]) for m in members)]
        for figure in OVER_SEEDS:
            numbers = [100 * m[figure] for m in members if is_number(m[figure])]
            spread = f" ± {statistics.stdev(numbers):.2f}" if len(numbers) > 1 else ""
            cells.append(f"{statistics.fmean(numbers):.2f}{spread}" if numbers else "-")
        table.append(cells)
    return group_keys, table


def markdown(root: Path, keys: list[str], rows: list[dict[str, Any]], shared: str) -> str:
    header = ["run", *keys, *(key for key, _ in FIGURES)]
    title = escape(str(root))
    lines = [f"# Sweep {title}\n", f"{len(rows)} runs; shared: {escape(shared) or '-'}\n"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        cells = [escape(row["run"]), *(_cell(row[key], "value") for key in keys)]
        cells += [_cell(row[key], kind) for key, kind in FIGURES]
        lines.append("| " + " | ".join(cells) + " |")
    group_keys, groups = over_seeds(keys, rows)
    if groups:
        header = [*group_keys, "seeds", *(f"{figure} % (mean ± sd)" for figure in OVER_SEEDS)]
        lines += ["", "## Over seeds (finished runs)", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(escape(cell) for cell in group) + " |" for group in groups]
    unfinished = sorted(
        path.parent.relative_to(root).as_posix()
        for path in root.rglob("metrics.jsonl")
        if not (path.parent / "summary.json").is_file()
    )
    if unfinished:
        lines.append(f"\nWithout summary.json (running or killed): {', '.join(unfinished)}")
    return "\n".join(lines) + "\n"


def csv_text(keys: list[str], rows: list[dict[str, Any]]) -> str:
    header = ["run", *keys, *(key for key, _ in FIGURES)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row[key] is None else row[key] for key in header])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One markdown and CSV table of a sweep's runs.")
    parser.add_argument("root", type=Path, metavar="MULTIRUN_DIR")
    parser.add_argument("-o", "--output", type=Path, help="STEM of STEM.md and STEM.csv")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"MULTIRUN_DIR {args.root} is not a directory")
    with reported("hiso-summarize"):
        written = write_tables(args.root, args.output or args.root / "sweep")
    if written is None:
        parser.error(f"no run under {args.root} has a summary.json (runs write it when they end)")
    for path in written:
        print(path)


def write_tables(root: Path, stem: Path) -> tuple[Path, Path] | None:
    """Write STEM.md and STEM.csv of the runs under `root`; None (nothing written) without runs."""
    keys, rows, shared = sweep_rows(root)
    if not rows:
        return None
    md, table = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")
    with writing("the sweep's table", md):
        stem.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(markdown(root, keys, rows, shared), encoding="utf-8")
    with writing("the sweep's table", table):
        table.write_text(csv_text(keys, rows), encoding="utf-8")
    return md, table
