"""Reproduce a paper's table, or one of this project's studies, on Hydra's multirun.

    python scripts/reproduce.py TABLE [--stage all|search|final|report|figure|status]
        [--cells CELL ...] [--methods M ...] [--seeds S ...] [--search-seeds S ...] [--rounds N]
        [--search-rounds N] [--launcher NAME] [--jobs N] [--out DIR] [--results DIR] [--force]
        [OVERRIDES ...]

Tables (hiso/reproduce/tables.py): hiso-paper, decomfl-paper, decomfl-lora, digits, movie-study,
smoke. `search` runs every learning rate of every method with each search seed at the table's
search rounds, and extends a grid past an edge where its best rate sits and refines it to 2x
spacing around the best (hiso/reproduce/search.py; each addition is logged); `final` runs, for
each method, the rate with the highest mean best validation accuracy over the search seeds with
every final seed at the table's rounds; `all` (default) both; then, and with `report` alone, the
results go to RESULTS/TABLE.md, .csv, .json and .png (RESULTS: OUT/results unless `--results` is
given, e.g. `--results docs/results` for the committed tables; a table there with more finished
seeds, or finished seeds of more rounds, than the new one is kept unless `--force`). `figure`
redraws RESULTS/TABLE.png from RESULTS/TABLE.json alone (no runs needed: after a plotting change).
`status` says how far the runs under OUT are and the time left at their pace (`--jobs` at a time),
launching and writing nothing.

Each stage is one `hiso-run -m` with runs under OUT/<cell>/<method>-lr<lr>-s<seed> (default OUT:
outputs/reproduce/TABLE), through any Hydra launcher (`--launcher basic|joblib|submitit_local|
submitit_slurm|slurm`, `--jobs N` runs at once where the launcher has such a bound). Rerunning skips
finished runs and continues the others (`resume=auto`). OVERRIDES go to every run (e.g.
`hydra.launcher.timeout_min=600`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from hiso.reproduce import curvature
from hiso.reproduce.aggregate import RunRecord, cell_searches, table_rows
from hiso.reproduce.progress import status
from hiso.reproduce.report import (
    draw,
    markdown,
    noise_section,
    overwrite_refusal,
    paired_section,
    run_entry,
    write,
)
from hiso.reproduce.search import Search
from hiso.reproduce.sweep import (
    LAUNCHERS,
    Launcher,
    Run,
    final_runs,
    is_finished,
    launch,
    rates_on_disk,
    read_commands,
    read_history,
    read_summary,
)
from hiso.reproduce.tables import PENDING, TABLES, Cell, Method, Table
from hiso.schema import SetupError
from hiso.script_errors import reported
from hiso.tracking.unwritten import writing

STAGES = ("all", "search", "final", "report", "figure", "status")
# what a table sets per run or per stage: an override of these would silently replace it
RESERVED = {
    "algo": "the methods",
    "optim.lr": "the methods' learning-rate grids",
    "seed": "--seeds",
    "federation.rounds": "--rounds and --search-rounds",
    "hydra.sweep.dir": "--out",
    "hydra.sweep.subdir": "the run names",
    "hydra/launcher": "--launcher",
}


def collect(table: Table, cells: tuple[Cell, ...], out: Path) -> list[tuple[Run, RunRecord]]:
    """Every run of the table found under `out`: any rate of a method's grid or added by its
    search, any search or final seed."""
    found = []
    for cell in cells:
        for method in table.cell_methods(cell):
            for lr in sorted({*method.lrs, *rates_on_disk(out, cell, method)}):
                for seed in dict.fromkeys((*table.search_seeds, *table.seeds)):
                    run = Run(cell, method, lr, seed)
                    history = read_history(out / run.name)
                    if not history:
                        continue
                    summary = read_summary(out / run.name)
                    record = RunRecord(
                        cell.name,
                        method.name,
                        method.algo,
                        lr,
                        seed,
                        history,
                        summary,
                        is_finished(summary, table.rounds),
                    )
                    found.append((run, record))
    return found


def searches(
    table: Table, cells: tuple[Cell, ...], out: Path, search_upto: int
) -> list[tuple[Cell, Method, Search]]:
    """Where every (cell, method)'s search stands over the runs under `out`."""
    records = [record for _, record in collect(table, cells, out)]
    found = []
    for cell in cells:
        by_method = cell_searches(table, cell, records, search_upto)
        found += [(cell, method, by_method[method.name]) for method in table.cell_methods(cell)]
    return found


def run_search(
    table: Table, cells: tuple[Cell, ...], out: Path, search_upto: int, launcher: Launcher
) -> None:
    """Launch the search until every method's is complete: the grid, then each rate the rules add
    (each addition logged with why), every search seed."""
    logged: set[str] = set()
    launched: set[str] = set()
    while True:
        state = searches(table, cells, out, search_upto)
        runs = []
        for cell, method, found in state:
            for line in found.log:
                entry = f"{cell.name}/{method.name}".lstrip("/") + f": {line}"
                if entry not in logged:
                    logged.add(entry)
                    print(f"[reproduce] search extended, {entry}", flush=True)
            runs += [Run(cell, method, lr, s) for lr in found.pending for s in table.search_seeds]
        if not runs:
            print("[reproduce] search: every method's search is complete")
            return
        if {r.name for r in runs} <= launched:
            raise SystemExit(
                "reproduce: search runs launched but still without a validation accuracy "
                "within the search rounds: " + ", ".join(sorted(r.name for r in runs))
            )
        launched |= {r.name for r in runs}
        code = launch("search", table, runs, search_upto, out, launcher)
        if code:
            raise SystemExit(f"reproduce: the search sweep exited with {code}; rerun to go on")


def chosen_rates(
    table: Table, cells: tuple[Cell, ...], out: Path, search_upto: int
) -> dict[str, float]:
    """The learning rate chosen on validation for each "<cell>/<method>"; exits naming the
    methods whose search is not complete."""
    chosen, missing = {}, []
    for cell, method, found in searches(table, cells, out, search_upto):
        key = f"{cell.name}/{method.name}"
        if found.chosen is None:
            missing.append(key.lstrip("/"))
        else:
            chosen[key] = found.chosen
    if missing:
        raise SystemExit(
            "reproduce: no learning rate chosen yet for "
            + ", ".join(missing)
            + ": a search run is missing, short of the search rounds or without validation "
            "accuracy (run --stage search first)"
        )
    return chosen


def report(
    table: Table,
    cells: tuple[Cell, ...],
    out: Path,
    results: Path,
    search_upto: int,
    force: bool = False,
) -> str:
    found = collect(table, cells, out)
    if not found:  # an empty table would read as a result
        print(
            f"reproduce: no runs of {table.name} under {out}: nothing to report; run its "
            "searches and finals first (--stage all), or give --out the folder they ran in",
            file=sys.stderr,
        )
        raise SystemExit(2)
    records = [record for _, record in found]
    rows = table_rows(table, cells, records, search_upto)
    document = {
        "table": table.name,
        "title": table.title,
        "source": table.source,
        "experiment": table.experiment,
        "seeds": list(table.seeds),
        "search_seeds": list(table.search_seeds),
        "rounds": table.rounds,
        "search_rounds": search_upto,
        "reference": table.reference,
        "commands": read_commands(out),
        "rows": rows,
        "runs": [run_entry(record, run.overrides(table, table.rounds)) for run, record in found],
        "curvature": curvature.summary(records),
    }
    refusal = overwrite_refusal(results / f"{table.name}.json", document)
    if refusal and not force:
        raise SystemExit(f"reproduce: {refusal}; --force overwrites it")
    reference = next((r for r in rows if r["method"] == table.reference), None)
    reference_lr = None if reference is None else reference["chosen_lr"]
    reference_label = table.method(table.reference).title
    text = markdown(table, rows, records, document["commands"], search_upto, table.rounds)
    text += noise_section(table, rows, records)
    text += paired_section(table, rows)
    by_tensor = results / f"{table.name}-h-by-tensor.md"
    text += curvature.section(records, reference_lr, reference_label, by_tensor)
    for path in write(results, table, document, text):
        print(f"[reproduce] wrote {path}")
    curvature_png = results / f"{table.name}-curvature.png"
    if curvature.plot(records, reference_lr, reference_label, curvature_png):
        print(f"[reproduce] wrote {curvature_png}")
    return text


def redraw(document_path: Path) -> None:
    """TABLE.png beside TABLE.json, drawn from the JSON alone."""
    try:
        document = json.loads(document_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SetupError(f"--stage figure reads {document_path}: {error}") from None
    out_png = document_path.with_suffix(".png")
    with writing("the table's figure", out_png):
        draw(document, out_png)
    print(f"[reproduce] wrote {out_png}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Reproduce a table on Hydra's multirun.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--stage", choices=STAGES, default="all")
    parser.add_argument("--cells", nargs="+", help="only these cells (e.g. opt-1.3b-sst2)")
    parser.add_argument(
        "--methods",
        nargs="+",
        help="only these methods (e.g. decomfl hiso); the table's reference is kept where a "
        "table is written (--stage all or report), not where runs are only run (search, final)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the table's")
    parser.add_argument("--rounds", type=int, help="final rounds (default: the table's)")
    parser.add_argument("--search-rounds", type=int, help="default: the table's")
    parser.add_argument(
        "--search-seeds",
        "--search-seed",
        nargs="+",
        type=int,
        help="the seeds whose mean best validation accuracy chooses the rates (default: the "
        "table's; disjoint from --seeds); e.g. `--stage final --seeds 5 --search-seeds 0 1` runs "
        "seed 5 on another machine",
    )
    parser.add_argument(
        "--launcher",
        choices=sorted(LAUNCHERS),
        help="Hydra launcher (default: basic, or joblib with --jobs > 1)",
    )
    parser.add_argument("--jobs", type=int, help="runs at once (joblib, submitit_slurm, slurm)")
    parser.add_argument("--out", type=Path, help="default outputs/reproduce/TABLE")
    parser.add_argument(
        "--results",
        type=Path,
        help="where the table's files go (default OUT/results; the committed tables: "
        "--results docs/results)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite a table in RESULTS that holds more finished seeds or rounds",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_intermixed_args(argv)
    for override in args.overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in RESERVED:
            parser.error(f"{override}: {key} is set by the table; use {RESERVED[key]}")
    args.launcher = args.launcher or ("joblib" if (args.jobs or 1) > 1 else "basic")
    if args.jobs is not None and (args.jobs < 1 or LAUNCHERS[args.launcher] is None):
        parser.error(
            f"--jobs {args.jobs}: the {args.launcher} launcher takes no bound on parallel jobs"
            if args.jobs >= 1
            else f"--jobs {args.jobs}: must be >= 1"
        )
    return args


def only_methods(table: Table, names: list[str], stage: str = "all") -> Table:
    """The table with only the named methods (and any method a kept one takes its rate from,
    whose search is the kept one's, and whose finals the final stage leaves out); with its
    reference too where the stage writes the table, whose speed-ups are against it
    (`--stage search`/`final` only run jobs, e.g. one method's beside another's on one machine)."""
    known = {method.name for method in table.methods}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(
            f"reproduce: --methods {' '.join(unknown)}: not methods of {table.name} "
            f"(methods: {', '.join(sorted(known))})"
        )
    kept = {*names, table.reference} if stage in ("all", "report") else set(names)
    kept |= {m.rate_from for m in table.methods if m.name in kept and m.rate_from}
    return dataclasses.replace(table, methods=tuple(m for m in table.methods if m.name in kept))


def main(argv: list[str] | None = None) -> None:
    """The command; bad input (a summary.json that is no JSON object, an --out that is a file or
    cannot be made) ends it with one line and code 2 (hiso/script_errors.py)."""
    with reported("reproduce"):
        reproduce(sys.argv[1:] if argv is None else argv)


def reproduce(argv: list[str]) -> None:
    args = parse(argv)
    table = TABLES[args.table]
    try:
        table = dataclasses.replace(
            table,
            seeds=tuple(args.seeds or table.seeds),
            rounds=args.rounds or table.rounds,
            search_rounds=args.search_rounds or table.search_rounds,
            search_seeds=tuple(args.search_seeds or table.search_seeds),
        )
    except ValueError as error:
        raise SystemExit(f"reproduce: --seeds/--search-seeds: {error}") from None
    reported = table
    if args.methods:
        # the runs of the named methods; the table written after them keeps its reference
        reported = only_methods(table, args.methods, "report")
        table = only_methods(table, args.methods, args.stage)
    cells = table.cells
    if args.cells:
        known = {cell.name: cell for cell in table.cells}
        unknown = [name for name in args.cells if name not in known]
        if unknown:
            raise SystemExit(
                f"reproduce: --cells {' '.join(unknown)}: not cells of {table.name} "
                f"(cells: {', '.join(known)})"
            )
        cells = tuple(known[name] for name in args.cells)
    for method in PENDING.get(table.name, []):
        print(f"[reproduce] {table.name}: {method} not in this table yet: no such algo group")
    out: Path = args.out or Path("outputs/reproduce") / table.name
    results = out / "results" if args.results is None else args.results
    if args.stage == "figure":
        redraw(results / f"{table.name}.json")
        return
    search_upto = table.search_rounds or table.rounds
    if args.stage == "status":
        found = searches(table, cells, out, search_upto)
        print(status(table, found, out, search_upto, args.jobs or 1, args.methods or ()))
        return
    if out.exists() and not out.is_dir():
        raise SetupError(f"--out {out}: a folder for the table's runs, and it is a file")
    with writing("the table's folder", out):
        out.mkdir(parents=True, exist_ok=True)
    invocation = ("python", "scripts/reproduce.py", *argv)
    launcher = Launcher(args.launcher, args.jobs, tuple(args.overrides), invocation)
    if args.stage in ("all", "search"):
        run_search(table, cells, out, search_upto, launcher)
    if args.stage in ("all", "final"):
        chosen = chosen_rates(table, cells, out, search_upto)
        runs = final_runs(table, cells, chosen, args.methods or ())
        code = launch("final", table, runs, table.rounds, out, launcher)
        if code:
            raise SystemExit(f"reproduce: the final sweep exited with {code}; rerun to go on")
    print(report(reported, cells, out, results, search_upto, args.force))


if __name__ == "__main__":
    main()
