"""A table's results as files: TABLE.md (the paper's layout, the search, the commands), TABLE.csv
(one line per cell and method), TABLE.json (every run with its validation curve) and TABLE.png."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from hiso.reproduce import curvature
from hiso.reproduce.aggregate import VAL, RunRecord
from hiso.reproduce.noise import compare, reading
from hiso.reproduce.significance import BOOTSTRAP_SEED, RESAMPLES, verdict
from hiso.reproduce.tables import Table
from hiso.tracking.curves import BYTES
from hiso.tracking.plots import plot_bands
from hiso.tracking.records import human_duration

# per-round keys kept in each run's curve in TABLE.json
CURVE_KEYS = (VAL, "test_accuracy", *BYTES.values(), *curvature.KEYS, "effective_lr")
SUMMARY_KEYS = (
    "status",
    "initial_val_accuracy",
    "initial_test_accuracy",
    "final_val_accuracy",
    "final_test_accuracy",
    "best_val_accuracy",
    "best_round",
    "test_accuracy_at_best",
    "total_bytes",
    "paper_bytes_hiso",
    "paper_bytes_decomfl",
    "seconds_per_round",
    "total_seconds",
    "val_examples",
    "test_examples",
    "device_name",
)
# (figure, its split's size in the summary, what it is called) compared against the reference
COMPARED = (
    ("final_test_accuracy", "test_examples", "final test accuracy"),
    ("test_accuracy_at_best", "test_examples", "test accuracy at the best validation round"),
    ("best_val_accuracy", "val_examples", "best validation accuracy"),
)


def _percent(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    text = f"{100 * stats['mean']:.2f}"
    return text if stats["std"] is None else f"{text} ± {100 * stats['std']:.2f}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _rounds(row: dict[str, Any]) -> str:
    own = row["rounds_to_reference_best"]
    per_seed = row["rounds_to_reference_best_per_seed"].values()
    seeds = ", ".join("not reached" if r is None else str(r) for r in per_seed)
    head = "not reached" if own is None else str(own)
    return f"{head} ({seeds})" if seeds else head


def _lrs(row: dict[str, Any]) -> str:
    def result(t: dict[str, Any]) -> str:
        if t["best_val_accuracy"] is None:
            return "-"
        best = f"{100 * t['best_val_accuracy']:.1f}"
        failed = t.get("failed_at_round")
        return best if failed is None else f"{best} (diverged at round {failed})"

    tried = ", ".join(f"{lr}: {result(t)}" for lr, t in row["lrs_tried"].items())
    chosen = "-" if row["chosen_lr"] is None else f"**{row['chosen_lr']!r}**"
    # one rate tried and chosen says it all; one tried before any is chosen (a search under way)
    # is shown
    shown = len(row["lrs_tried"]) > 1 or (row["lrs_tried"] and row["chosen_lr"] is None)
    return f"{chosen} ({tried})" if shown else chosen


def _paper(value: float | int | None) -> str:
    return "-" if value is None else f"{value}"


def results_table(table: Table, rows: list[dict[str, Any]]) -> str:
    ref = table.method(table.reference).title
    head = (
        "| method | lr chosen (tried: best val. %) | seeds | final test acc. % | paper | "
        "final val. acc. % | test acc. at best val. round % | best val. acc. % | "
        f"rounds to {ref}'s best val. (per seed) | speed-up vs {ref} [95% CI] | paper rounds | "
        "bytes to that round: measured / HiSo conv. / DeComFL conv. | s/round | wall per run |"
    )
    lines = [head, "|" + "---|" * 14]
    for row in rows:
        b = row["bytes_to_reference_best"]
        speedup = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        if row.get("speedup_ci95"):
            low, high = (f"{v:.2f}" if v else "not reached" for v in row["speedup_ci95"])
            speedup += f" [{low}, {high}]"
        lines.append(
            f"| {row['label']} | {_lrs(row)} | {len(row['seeds'])}/{row['runs_expected']} "
            f"| {_percent(row['final_test_accuracy'])} | {_paper(row['paper']['accuracy'])} "
            f"| {_percent(row['final_val_accuracy'])} | {_percent(row['test_accuracy_at_best'])} "
            f"| {_percent(row['best_val_accuracy'])} "
            f"| {_rounds(row)} | {speedup} | {_paper(row['paper']['rounds'])} "
            f"| {_count(b['measured'])} / {_count(b['paper_hiso'])} / {_count(b['paper_decomfl'])} "
            f"| {_fixed(row['seconds_per_round']['mean'])} "
            f"| {human_duration(row['total_seconds']['mean'])} |"
        )
    return "\n".join(lines) + "\n"


def _fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(
    table: Table,
    rows: list[dict[str, Any]],
    records: list[RunRecord],
    commands: list[dict[str, Any]],
    search_rounds: int,
    rounds: int,
) -> str:
    cells = list(dict.fromkeys(row["cell"] for row in rows))
    total = sum((r.summary or {}).get("total_seconds") or 0.0 for r in records)
    devices = Counter(
        (r.summary or {}).get("device_name") or (r.summary or {}).get("device") or "unrecorded"
        for r in records
    )
    parts = [
        f"# {table.title}\n",
        f"Encodes: {table.source}. {table.note}".rstrip() + "\n",
        f"Experiment `+experiment={table.experiment}`; seeds {', '.join(map(str, table.seeds))}; "
        f"{rounds} rounds; learning rates searched with seed"
        f"{'s' if len(table.search_seeds) > 1 else ''} "
        f"{', '.join(map(str, table.search_seeds))} over {search_rounds} rounds and chosen on the "
        "highest mean best validation accuracy over the search seeds (bold); a grid whose best "
        "sat on an edge was extended past it by the grid's factor until the best was inside or "
        "the rate beyond it diverged, and refined to at most 2x spacing around the best "
        "(see the search log). "
        "Accuracies are means ± standard deviation over the finished seeds at the chosen rate; "
        "rounds to the reference's best validation accuracy are read off the mean validation "
        "curves (per seed: against the same seed's reference). Bytes: the wire's measured "
        "total over all clients, and one client's bytes in the HiSo (8KP per round) and DeComFL "
        f"(12KP) papers' conventions. Run time of all runs found: {human_duration(total)} "
        f"({', '.join(f'{name}: {n} runs' for name, n in sorted(devices.items()))}).\n",
    ]
    for cell in cells:
        cell_rows = [row for row in rows if row["cell"] == cell]
        if cell:
            parts.append(f"## {cell}\n")
        parts.append(results_table(table, cell_rows))
    log = [
        f"- {row['label']}{' (' + row['cell'] + ')' if row['cell'] else ''}: {line}"
        for row in rows
        for line in row["search_log"]
    ]
    log += [
        f"- {row['label']}: the search stopped at its extension limit with the best rate "
        f"{row['chosen_lr']!r} on an edge (not bracketed)"
        for row in rows
        if row["bracketed"] is False
    ]
    if log:
        parts.append("## Search log\n\n" + "\n".join(log) + "\n")
    if commands:
        parts.append("## Commands\n")
        # the newest command of each stage and invocation (a stage's runs may be split up, e.g.
        # seeds on another machine); where the output went is not part of the invocation
        latest = {(c["stage"], _invocation(c.get("reproduce") or [])): c for c in commands}
        for (stage, _), entry in latest.items():
            argv = entry.get("reproduce")
            if argv:
                parts.append(f"{stage}, started with `{shlex.join(argv)}`:\n")
            command = [Path(entry["command"][0]).name, *entry["command"][1:]]
            parts.append(f"```\n{shlex.join(command)}\n```\n")
        parts.append("One run alone: the `command` of each run in the JSON file.\n")
    return "\n".join(parts) + "\n"


def _invocation(argv: list[str]) -> tuple[str, ...]:
    """A reproduce.py command line without --stage, --out and --results (and their values)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--stage", "--out", "--results"):
            skip = True
        elif not arg.startswith(("--stage=", "--out=", "--results=")):
            kept.append(arg)
    return tuple(kept)


def noise_section(table: Table, rows: list[dict[str, Any]], records: list[RunRecord]) -> str:
    """Each method's difference from the reference against the noise (hiso/reproduce/noise.py),
    per cell, on the final runs at the chosen rates; empty when there is nothing to compare."""

    def final(row: dict[str, Any]) -> list[RunRecord]:
        return [
            r
            for r in records
            if r.cell == row["cell"]
            and r.method == row["method"]
            and r.lr == row["chosen_lr"]
            and r.seed in row["seeds"]
            and r.finished
        ]

    lines = []
    for ref in (row for row in rows if row["method"] == table.reference):
        ref_runs = final(ref)
        for row in rows:
            runs = final(row)
            if row["cell"] != ref["cell"] or row is ref or not runs or not ref_runs:
                continue
            for key, size, name in COMPARED:
                a = [s[key] for r in runs if (s := r.summary or {}).get(key) is not None]
                b = [s[key] for r in ref_runs if (s := r.summary or {}).get(key) is not None]
                sizes = {(r.summary or {}).get(size) for r in runs + ref_runs}
                n = sizes.pop() if len(sizes) == 1 else None
                if a and b:
                    lines.append(
                        "- " + reading(row["label"], ref["label"], name, compare(a, b, n), n)
                    )
    if not lines:
        return ""
    return "## Against the noise\n\n" + "\n".join(lines) + "\n\n"


def paired_section(table: Table, rows: list[dict[str, Any]]) -> str:
    """McNemar's paired test of each method against the reference on the test examples, at the
    final round and at the best validation round (hiso/reproduce/significance.py), in words."""
    ref = table.method(table.reference).title
    lines = []
    for row in rows:
        tests = row.get("paired_test") or {}
        if row["method"] == table.reference or not any(tests.values()):
            continue
        where = f" ({row['cell']})" if row["cell"] else ""
        for kind, name in (("final", "final round"), ("best", "best validation round")):
            lines.append(f"- {row['label']}{where} vs {ref}, {name}: {verdict(tests.get(kind))}.")
    if not lines:
        return ""
    return (
        "## Paired tests\n\n"
        "McNemar's test on the same test examples, each method's run paired with the "
        "reference's at the same seed, the discordant examples pooled over seeds "
        f"{', '.join(map(str, table.seeds))}; the speed-up's "
        f"interval is a bootstrap over seeds ({RESAMPLES} resamples, generator seed "
        f"{BOOTSTRAP_SEED}, percentiles 2.5 and 97.5, method and reference resampled at the same "
        "seeds; a resample whose mean curve does not reach the reference's best validation "
        "accuracy counts as 0, shown as not reached).\n\n" + "\n".join(lines) + "\n\n"
    )


def csv_text(rows: list[dict[str, Any]]) -> str:
    stats = ("final_test_accuracy", "final_val_accuracy", "best_val_accuracy")
    stats += ("test_accuracy_at_best", "seconds_per_round", "total_seconds")
    header = ["cell", "method", "algorithm", "chosen_lr", "lrs_tried", "seeds"]
    for key in stats:
        header += [f"{key}_mean", f"{key}_std"]
    header += ["rounds_to_reference_best", "speedup", "speedup_ci95_low", "speedup_ci95_high"]
    header += [f"mcnemar_{kind}_{part}" for kind in ("final", "best") for part in ("b", "c", "p")]
    header += [f"bytes_to_reference_best_{name}" for name in BYTES]
    header += ["paper_accuracy", "paper_rounds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        tried = ";".join(f"{lr}:{t['best_val_accuracy']}" for lr, t in row["lrs_tried"].items())
        line = [row["cell"], row["method"], row["algorithm"], row["chosen_lr"], tried]
        line.append(" ".join(map(str, row["seeds"])))
        for key in stats:
            line += [row[key]["mean"], row[key]["std"]]
        line += [
            row["rounds_to_reference_best"],
            row["speedup"],
            *(row["speedup_ci95"] or ("", "")),
        ]
        for kind in ("final", "best"):
            test = (row.get("paired_test") or {}).get(kind) or {}
            line += [test.get("b"), test.get("c"), test.get("p")]
        line += [row["bytes_to_reference_best"][name] for name in BYTES]
        line += [row["paper"]["accuracy"], row["paper"]["rounds"]]
        writer.writerow(["" if v is None else v for v in line])
    return buffer.getvalue()


def run_entry(record: RunRecord, command: list[str]) -> dict[str, Any]:
    summary = record.summary or {}
    curve = [
        {"round": row["round"], **{k: row.get(k) for k in CURVE_KEYS}}
        for row in record.history
        if row.get(VAL) is not None or row.get("test_accuracy") is not None
    ]
    return {
        "cell": record.cell,
        "method": record.method,
        "algorithm": record.algorithm,
        "lr": record.lr,
        "seed": record.seed,
        "finished": record.finished,
        "rounds": record.history[-1]["round"] if record.history else 0,
        "command": shlex.join(["hiso-run", *command]),
        "figures": {key: summary.get(key) for key in SUMMARY_KEYS},
        "curve": curve,
    }


def finished_seeds(document: dict[str, Any]) -> int:
    """The most final seeds any row of a table's JSON holds."""
    return max((len(row.get("seeds") or ()) for row in document.get("rows", ())), default=0)


def overwrite_refusal(path: Path, document: dict[str, Any]) -> str | None:
    """Why writing `document` over the table at `path` would lose results (None: it would not):
    the table there holds more finished seeds, or finished seeds of more rounds (a table of
    searches alone holds no final runs at its rounds)."""
    if not path.is_file():
        return None
    held = json.loads(path.read_text(encoding="utf-8"))
    rounds, seeds = int(held.get("rounds") or 0), finished_seeds(held)
    new_rounds, new_seeds = int(document["rounds"]), finished_seeds(document)
    if (seeds and new_rounds < rounds) or new_seeds < seeds:
        return (
            f"{path} holds {rounds} rounds and up to {seeds} finished seeds per method; this "
            f"table has {new_rounds} rounds and up to {new_seeds}: not overwritten"
        )
    return None


def final_curves(document: dict[str, Any]) -> dict[str, dict[str, list[list[dict]]]]:
    """Per cell and method label, the validation curves of the method's final runs (its chosen
    rate, its final seeds), read from a table's document (TABLE.json)."""
    curves: dict[str, dict[str, list[list[dict]]]] = {}
    for row in document["rows"]:
        final = [
            r["curve"]
            for r in document["runs"]
            if (r["cell"], r["method"], r["lr"]) == (row["cell"], row["method"], row["chosen_lr"])
            and r["seed"] in row["seeds"]
        ]
        if final:
            curves.setdefault(row["cell"], {})[row["label"]] = final
    return curves


def write(results: Path, table: Table, document: dict[str, Any], markdown_text: str) -> list[Path]:
    """Write TABLE.md, .csv, .json and .png under `results`; return the paths."""
    results.mkdir(parents=True, exist_ok=True)
    stem = results / table.name
    paths = [stem.with_suffix(s) for s in (".md", ".csv", ".json", ".png")]
    paths[0].write_text(markdown_text, encoding="utf-8")
    paths[1].write_text(csv_text(document["rows"]), encoding="utf-8")
    paths[2].write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    draw(document, paths[3])
    return paths


def draw(document: dict[str, Any], out_png: Path) -> None:
    """TABLE.png: the final runs' validation accuracy against rounds and bytes (mean and band
    over seeds), from the table's document alone."""
    plot_bands(final_curves(document), out_png, document["title"])
