"""scripts/reproduce.py: the aggregation on synthetic runs, the band plot, and a real table on
digits through `hiso-run -m`, interrupted and resumed, and through the joblib launcher."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hiso.reproduce import curvature
from hiso.reproduce.aggregate import RunRecord, method_search, table_rows
from hiso.reproduce.noise import compare
from hiso.reproduce.report import markdown, results_table
from hiso.reproduce.sweep import RUNS_DIR, pending_runs, search_runs, write_run_configs
from hiso.reproduce.tables import TABLES, Cell, Method, Paper, Table
from hiso.tracking.plots import plot_bands

ROOT = Path(__file__).resolve().parents[1]
TWO = Table(
    name="two",
    title="two methods",
    source="synthetic",
    experiment="digits",
    methods=(Method("decomfl", "decomfl", (1.0, 2.0)), Method("hiso", "hiso", (1.0, 2.0))),
    seeds=(1, 2),
    search_seeds=(0,),
    rounds=100,
    search_rounds=50,
    # the bracketing rules have their own tests (tests/test_search.py): two rates stay two here
    max_extensions=0,
)


def history(val: dict[int, float], test: float = 0.5, per_round: int = 10) -> list[dict]:
    """Rounds 0..max(val): bytes grow by per_round (HiSo convention 40/round, DeComFL 60), the
    validation accuracy where given and the test accuracy at the first and last round."""
    last = max(val)
    rows = []
    for rnd in range(last + 1):
        row: dict = {
            "round": rnd,
            "cumulative_bytes": per_round * rnd,
            "cumulative_paper_bytes_hiso": 40 * rnd,
            "cumulative_paper_bytes_decomfl": 60 * rnd,
        }
        if rnd in val:
            row["val_accuracy"] = val[rnd]
        if rnd in (0, last):
            row["test_accuracy"] = test
        rows.append(row)
    return rows


def record(method: str, lr: float, seed: int, val: dict[int, float], **summary) -> RunRecord:
    finished = max(val) >= TWO.rounds
    h = history(val, summary.get("final_test_accuracy", 0.5), 10 + seed)
    return RunRecord("", method, method, lr, seed, h, {"status": "finished", **summary}, finished)


def test_the_search_uses_validation_within_the_search_rounds_never_test() -> None:
    # lr 1.0: best validation 0.8 by round 50; lr 2.0: better test, and validation only later
    def runs(curves: dict[float, dict[int, float]], failed: tuple[float, ...] = ()) -> list:
        found = [
            record("decomfl", lr, 0, val, final_test_accuracy=lr / 2) for lr, val in curves.items()
        ]
        for r in found:
            if r.lr in failed:
                r.summary = {"status": "failed", "round_reached": 75}
        return found

    curves = {1.0: {0: 0.5, 25: 0.8, 50: 0.7, 75: 0.7}, 2.0: {0: 0.5, 25: 0.7, 50: 0.75, 75: 0.95}}
    method = TWO.methods[0]
    assert method_search(method, runs(curves), (0,), 50, 0).chosen == 1.0
    assert method_search(method, runs(curves), (0,), 75, 0).chosen == 2.0
    # a tie goes to the rate that reached it first
    tie = {1.0: {0: 0.5, 50: 0.8}, 2.0: {0: 0.5, 25: 0.8, 50: 0.8}}
    assert method_search(method, runs(tie), (0,), 50, 0).chosen == 2.0
    # a search seed without its run: nothing chosen
    assert method_search(method, runs(curves), (0, 1), 50, 0).chosen is None
    # a rate that diverged is no choice while another lasted the search, whatever it reached
    assert method_search(method, runs(curves, (2.0,)), (0,), 75, 0).chosen == 1.0
    assert method_search(method, runs(curves, (1.0, 2.0)), (0,), 75, 0).chosen == 2.0


def test_rows_time_each_method_to_the_reference_best_on_validation() -> None:
    curve = {0: 0.5, 25: 0.6, 50: 0.7, 75: 0.75, 100: 0.8}
    fast = {0: 0.5, 25: 0.7, 50: 0.8, 75: 0.85, 100: 0.85}
    records = [
        # search (seed 0, 50 rounds): decomfl picks 2.0 on validation although 1.0 tests better
        record("decomfl", 1.0, 0, {0: 0.5, 25: 0.55, 50: 0.6}, final_test_accuracy=0.99),
        record("decomfl", 2.0, 0, {0: 0.5, 25: 0.6, 50: 0.7}),
        record("hiso", 1.0, 0, {0: 0.5, 25: 0.7, 50: 0.8}),
        record("hiso", 2.0, 0, {0: 0.5, 25: 0.5, 50: 0.5}),
        # final: seeds 1, 2 at the chosen rates, 100 rounds
        record("decomfl", 2.0, 1, curve, final_test_accuracy=0.7, total_seconds=10.0),
        record("decomfl", 2.0, 2, {**curve, 100: 0.78}, final_test_accuracy=0.8),
        record("hiso", 1.0, 1, fast, final_test_accuracy=0.8),
        record("hiso", 1.0, 2, {**fast, 50: 0.75}, final_test_accuracy=0.9),
        # an unfinished seed of a rate that was not chosen changes nothing
        record("hiso", 2.0, 2, {0: 0.5, 25: 0.99}),
    ]
    rows = {r["method"]: r for r in table_rows(TWO, TWO.cells, records, search_upto=50)}
    decomfl, hiso = rows["decomfl"], rows["hiso"]
    assert decomfl["chosen_lr"] == 2.0 and hiso["chosen_lr"] == 1.0
    assert decomfl["lrs_tried"]["1.0"] == {
        "best_val_accuracy": 0.6,
        "best_val_accuracy_per_seed": {0: 0.6},
        "best_round": 50,
        "failed_at_round": None,
    }
    assert decomfl["final_test_accuracy"]["mean"] == pytest.approx(0.75)
    assert decomfl["final_test_accuracy"]["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert decomfl["final_test_accuracy"]["per_seed"] == {1: 0.7, 2: 0.8}
    assert decomfl["total_seconds"]["mean"] == 10.0 and decomfl["total_seconds"]["std"] is None
    # DeComFL's mean validation curve peaks at 0.79 (round 100); HiSo's mean passes it at 75
    assert decomfl["rounds_to_reference_best"] == 100
    assert hiso["rounds_to_reference_best"] == 75
    assert hiso["speedup"] == pytest.approx(100 / 75)
    # per seed: seed 1 against DeComFL's seed-1 best 0.8, seed 2 against 0.78
    assert hiso["rounds_to_reference_best_per_seed"] == {1: 50, 2: 75}
    # bytes at round 75: seeds 1 and 2 move 11 and 12 bytes a round
    assert hiso["bytes_to_reference_best"] == {
        "measured": pytest.approx(75 * 11.5),
        "paper_hiso": 75 * 40,
        "paper_decomfl": 75 * 60,
    }
    assert hiso["seeds"] == [1, 2] and hiso["runs_expected"] == 2


def test_rows_wait_for_a_complete_search_and_show_paper_figures() -> None:
    table = dataclasses.replace(TWO, cells=(Cell("m", "d", paper={"hiso": Paper(85.5, 275)}),))
    records = [record("decomfl", 1.0, 0, {0: 0.5, 50: 0.6})]
    for r in records:
        r.cell = "m-d"
    rows = {r["method"]: r for r in table_rows(table, table.cells, records, search_upto=50)}
    assert rows["decomfl"]["chosen_lr"] is None  # lr 2.0 has not run
    assert rows["decomfl"]["seeds"] == [] and rows["decomfl"]["final_test_accuracy"]["mean"] is None
    assert rows["hiso"]["paper"] == {"accuracy": 85.5, "rounds": 275}
    assert rows["hiso"]["cell"] == "m-d"


def test_a_failed_search_run_is_a_result_and_never_relaunched(tmp_path: Path, capsys) -> None:
    # lr 2.0 leads on validation, then diverges at round 5: tried, shown, not chosen
    diverged = record("decomfl", 2.0, 0, {0: 0.5, 5: 0.9})
    diverged.summary = {"status": "failed", "round_reached": 5}
    records = [record("decomfl", 1.0, 0, {0: 0.5, 50: 0.6}), diverged]
    rows = table_rows(TWO, TWO.cells, records, search_upto=50)
    assert rows[0]["chosen_lr"] == 1.0
    assert rows[0]["lrs_tried"]["2.0"] == {
        "best_val_accuracy": 0.9,
        "best_val_accuracy_per_seed": {0: 0.9},
        "best_round": 5,
        "failed_at_round": 5,
    }
    assert "2.0: 90.0 (diverged at round 5)" in results_table(TWO, rows)
    # on disk: finished and failed runs are skipped, short and absent ones launched
    runs = search_runs(TWO, TWO.cells)
    summaries = (
        {"status": "finished", "round_reached": 50},
        {"status": "failed", "round_reached": 5},
        {"status": "finished", "round_reached": 20},
    )
    for run, summary in zip(runs, summaries, strict=False):
        (tmp_path / run.name).mkdir()
        (tmp_path / run.name / "summary.json").write_text(json.dumps(summary))
    assert pending_runs(runs, 50, tmp_path) == runs[2:]
    log = capsys.readouterr().out
    assert f"skip {runs[0].name}: finished (50 rounds)" in log
    assert f"skip {runs[1].name}: failed at round 5" in log


def test_commands_show_each_invocation_newest_wherever_its_output_went() -> None:
    def entry(stage: str, time: str, *args: str) -> dict:
        argv = ["python", "scripts/reproduce.py", "smoke", *args]
        return {"stage": stage, "time": time, "reproduce": argv, "command": ["hiso-run", time]}

    commands = [
        entry("search", "t1", "--stage", "search", "--out", "/a"),
        entry("search", "t2", "--out", "/b"),  # the same search, moved: only the newest shows
        entry("final", "t3", "--out", "/b"),
        entry("final", "t4", "--stage", "final", "--seeds", "1", "--out=/gpu", "device=cuda"),
    ]
    text = markdown(TABLES["smoke"], [], [], commands, 20, 40)
    shown = [line for line in text.splitlines() if line.startswith("hiso-run ")]
    assert shown == ["hiso-run t2", "hiso-run t3", "hiso-run t4"]


def test_noise_reading_against_a_hand_computation() -> None:
    # means 0.80 and 0.78, sample variances 2e-4 each over 2 seeds: SE = sqrt(2 * 2e-4 / 2)
    result = compare([0.79, 0.81], [0.77, 0.79], n=2000)
    assert result["difference"] == pytest.approx(0.02)
    assert result["seed_se"] == pytest.approx(math.sqrt(2e-4))
    evaluation = math.sqrt(0.8 * 0.2 / 2000 + 0.78 * 0.22 / 2000)
    assert result["evaluation_se"] == pytest.approx(evaluation)
    assert result["exceeds_noise"] is False  # 0.02 <= 2 * 0.0141
    assert compare([0.85, 0.86], [0.77, 0.78], n=2000)["exceeds_noise"] is True
    # the evaluation set alone can hold a difference inside the noise: 500 examples
    assert compare([0.80, 0.80], [0.78, 0.78], n=500)["exceeds_noise"] is False
    one_seed = compare([0.8], [0.7], n=None)
    assert one_seed["seed_se"] is None and one_seed["exceeds_noise"] is None


def test_curvature_trajectory_effective_rate() -> None:
    keys = dict(curvature_q05=0.5, curvature_q50=2.0, curvature_q95=4.0, curvature_floor_fraction=0)
    rows = [{"round": 0}, {"round": 25, **keys, "curvature_inverse_mean": 0.25}]
    (point,) = curvature.trajectory(RunRecord("", "hiso", "hiso", 1e-5, 0, rows, None))
    assert point["round"] == 25 and point["spread"] == 8.0
    assert point["effective_lr"] == pytest.approx(1e-5 * 0.25)  # lr * mean(1/H)


def test_plot_bands_starts_the_bytes_axis_at_round_zero(tmp_path: Path) -> None:
    runs = {
        "DeComFL": [history({0: 0.5, 10: 0.6, 20: 0.7}), history({0: 0.5, 10: 0.7, 20: 0.8})],
        "HiSo": [history({0: 0.5, 10: 0.8, 20: 0.9})],
    }
    out = tmp_path / "bands.png"
    fig = plot_bands({"": runs, "other cell": runs}, out, "title")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rounds_ax, bytes_ax = fig.axes[0], fig.axes[1]
    assert bytes_ax.get_xscale() == "symlog"
    lines = bytes_ax.get_lines()
    assert [line.get_label() for line in lines] == ["DeComFL", "HiSo"]
    assert list(lines[0].get_xdata()) == [0, 100, 200]  # round 0 drawn at zero bytes
    assert list(lines[0].get_ydata()) == pytest.approx([0.5, 0.65, 0.75])
    assert list(rounds_ax.get_lines()[1].get_xdata()) == [0, 10, 20]
    assert len(bytes_ax.collections) == 2  # one min-max band per method
    assert lines[0].get_color() == fig.axes[2].get_lines()[0].get_color()  # same colour per method


# ---- the real thing: `scripts/reproduce.py smoke` (digits, 2 methods x 2 rates x 2 seeds) ----
def reproduce(*args: str, tmp_path: Path, **popen) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "smoke", *args]
    command += ["--out", str(tmp_path / "out"), "--results", str(tmp_path / "results")]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def finished_runs(out: Path) -> dict[str, tuple[int, str]]:
    """Run name -> (mtime_ns, text) of metrics.jsonl, for the runs with a summary."""
    return {
        str(p.parent.relative_to(out)): (
            (p.parent / "metrics.jsonl").stat().st_mtime_ns,
            (p.parent / "metrics.jsonl").read_text(),
        )
        for p in out.glob("**/summary.json")
    }


def test_interrupted_table_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = reproduce(tmp_path=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 240
    # both DeComFL rates of the search (run first)
    while len(finished_runs(out)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    done = finished_runs(out)
    assert len(done) >= 2, "no run finished before the kill"
    assert len(done) < 6, "the sweep finished before it could be interrupted"

    second = reproduce(tmp_path=tmp_path)
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log[-3000:]
    result = json.loads((tmp_path / "results" / "smoke.json").read_text())
    launched = {
        name
        for line in log.splitlines()
        if "+table_run=" in line
        for name in line.split("+table_run=")[1].split(",")
    }
    assert launched and not launched & done.keys()
    for name, (mtime, text) in done.items():  # not launched again, not touched
        assert finished_runs(out)[name] == (mtime, text)
    table = TABLES["smoke"]
    assert result["search_seeds"] == [0] and result["seeds"] == [1, 2]
    assert {(r["method"], r["lr"], r["seed"]) for r in result["runs"]} >= {
        (m.name, lr, 0) for m in table.methods for lr in m.lrs
    }
    for row in result["rows"]:
        search = {
            r["lr"]: max(p["val_accuracy"] for p in r["curve"] if p["round"] <= 20)
            for r in result["runs"]
            if r["method"] == row["method"] and r["seed"] == 0
        }
        tried = {lr: t["best_val_accuracy"] for lr, t in row["lrs_tried"].items()}
        assert tried == {repr(lr): best for lr, best in search.items()}
        assert search[row["chosen_lr"]] == max(search.values())
        # a grid's rate beyond the two of the grid was added by the search, and logged
        for lr in set(search) - {1e-3, 2e-3}:
            assert any(f"adding {lr!r}" in line for line in row["search_log"])
            assert f"search extended, {row['method']}: " in log
        assert row["seeds"] == [1, 2]
    finals = [r for r in result["runs"] if r["finished"]]
    assert {r["rounds"] for r in finals} == {40}
    for r in result["runs"]:  # a search run never scores the test split; a final does
        assert any(p["test_accuracy"] is not None for p in r["curve"]) == (r["seed"] != 0)
    for suffix in (".md", ".csv", ".png"):
        assert (tmp_path / "results" / f"smoke{suffix}").stat().st_size > 0
    text = (tmp_path / "results" / "smoke.md").read_text()
    assert "hiso-run -m" in text
    # the comparison against the noise, with the evaluation sets' sizes from the runs
    assert "HiSo - DeComFL, final test accuracy:" in text and "(n = 360)" in text
    assert {(c["method"], c["lr"], c["seed"]) for c in result["curvature"]} == {
        ("hiso", r["lr"], r["seed"]) for r in result["runs"] if r["method"] == "hiso"
    }
    assert "\n\n## HiSo's curvature H" in text
    assert "\n| hiso | 0.001 | 0 |" in text
    assert (tmp_path / "results" / "smoke-curvature.png").stat().st_size > 0
    # `--stage figure` redraws the table's figure from its JSON alone: the same image
    drawn = (tmp_path / "results" / "smoke.png").read_bytes()
    (tmp_path / "results" / "smoke.png").unlink()
    figure = reproduce("--stage", "figure", tmp_path=tmp_path)
    log, _ = figure.communicate(timeout=120)
    assert figure.returncode == 0, log[-3000:]
    assert (tmp_path / "results" / "smoke.png").read_bytes() == drawn
    # one method's stage (its finals done: nothing runs) reports the table with its reference
    runs = finished_runs(out)
    one = reproduce("--stage", "final", "--methods", "hiso", tmp_path=tmp_path)
    log, _ = one.communicate(timeout=120)
    assert one.returncode == 0, log[-3000:]
    assert finished_runs(out) == runs
    rows = json.loads((tmp_path / "results" / "smoke.json").read_text())["rows"]
    assert [row["method"] for row in rows] == ["decomfl", "hiso"]


# a table's search and finals on disjoint seeds run in the default suite through
# test_interrupted_table_resumes_...; the finals alone on another machine in `make test-slow`
@pytest.mark.slow
def test_final_seeds_apart_from_the_search_seeds(tmp_path: Path) -> None:
    """`--stage final --seeds 3 --search-seeds 0` (the finals on another machine): the rates come
    from seed 0's search, only seed 3 runs, and the search runs are left as they are."""
    out = tmp_path / "out"
    search = reproduce("--stage", "search", "--search-rounds", "3", tmp_path=tmp_path)
    log, _ = search.communicate(timeout=300)
    assert search.returncode == 0, log[-3000:]
    searched = finished_runs(out)
    assert {name.rsplit("-", 1)[1] for name in searched} == {"s0"} and len(searched) >= 4
    final = reproduce(
        "--stage", "final", "--seeds", "3", "--search-seeds", "0", "--search-rounds", "3",
        "--rounds", "4", tmp_path=tmp_path,
    )  # fmt: skip
    log, _ = final.communicate(timeout=300)
    assert final.returncode == 0, log[-3000:]
    after = finished_runs(out)
    assert {name: after[name] for name in searched} == searched
    result = json.loads((tmp_path / "results" / "smoke.json").read_text())
    chosen = {}
    for row in result["rows"]:
        best = {
            lr: max(p["val_accuracy"] for p in r["curve"])
            for r in result["runs"]
            if r["method"] == row["method"] and r["seed"] == 0
            for lr in [r["lr"]]
        }
        assert best[row["chosen_lr"]] == max(best.values())
        assert row["seeds"] == [3]
        chosen[row["method"]] = row["chosen_lr"]
    assert after.keys() - searched.keys() == {f"{m}-lr{lr:g}-s3" for m, lr in chosen.items()}
    text = (tmp_path / "results" / "smoke.md").read_text()
    assert "learning rates searched with seed 0" in text
    assert f"(cpu: {len(searched) + 2} runs)" in text
    # both stages' commands, each with how it was started
    assert "search, started with `python scripts/reproduce.py smoke --stage search" in text
    assert "final, started with `python scripts/reproduce.py smoke --stage final --seeds 3" in text
    # a final seed among the search seeds is refused
    clash = reproduce("--stage", "report", "--seeds", "0", tmp_path=tmp_path)
    log, _ = clash.communicate(timeout=60)
    assert clash.returncode != 0 and "must be disjoint" in log


# joblib running two hiso-run jobs at once is tested in the default suite by test_launchers; this
# run of it through reproduce.py is in `make test-slow`
@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_at_once(tmp_path: Path) -> None:
    run = reproduce(
        "--stage", "search", "--launcher", "joblib", "--jobs", "2", "--search-rounds", "3",
        "threads=1", tmp_path=tmp_path,
    )  # fmt: skip
    log, _ = run.communicate(timeout=300)
    assert run.returncode == 0, log[-3000:]
    assert "hydra/launcher=joblib" in log and "hydra.launcher.n_jobs=2" in log
    runs = sorted((tmp_path / "out").glob("*/.hydra/hydra.yaml"))
    assert len(runs) >= 4  # the grid's, and any rate the search added
    hydra = runs[0].read_text()
    assert "hydra_joblib_launcher" in hydra and "n_jobs: 2" in hydra
    assert "threads: 1" in (runs[0].parent / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optim.lr=0.1"], "optim.lr is set by the table; use the methods' learning-rate grids"),
        (["+seed=3"], "seed is set by the table; use --seeds"),
        (["--launcher", "basic", "--jobs", "2"], "the basic launcher takes no bound"),
        (["--jobs", "0"], "must be >= 1"),
    ],
)
def test_arguments_a_table_controls_are_refused(args: list[str], message: str, capsys) -> None:
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_:
        script.parse(["smoke", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert script.parse(["smoke", "--jobs", "2", "threads=1"]).launcher == "joblib"


def test_results_go_under_the_output_and_a_fuller_table_is_kept(tmp_path: Path, capsys) -> None:
    """Without --results the table is written under OUT/results; a table there with more rounds
    or more finished seeds is not overwritten unless --force (issue 20: a smoke run once replaced
    the committed digits table)."""
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "out"
    # no runs at all: refused, nothing written (issue 23: it wrote an empty table)
    with pytest.raises(SystemExit) as refused:
        script.main(["smoke", "--stage", "report", "--out", str(out)])
    assert refused.value.code == 2 and not (out / "results").exists()
    assert capsys.readouterr().err.startswith(f"reproduce: no runs of smoke under {out}")
    (run,) = search_runs(TABLES["smoke"], TABLES["smoke"].cells)[:1]
    (out / run.name).mkdir()
    rows = [{"round": r, "val_accuracy": 0.5, "test_accuracy": 0.5} for r in (0, 40)]
    (out / run.name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script.main(["smoke", "--stage", "report", "--out", str(out)])
    written = json.loads((out / "results" / "smoke.json").read_text())
    assert written["rounds"] == 40 and (out / "results" / "smoke.md").is_file()

    committed = tmp_path / "committed"
    committed.mkdir()
    held = {"rounds": 3000, "rows": [{"seeds": [2, 3, 4]}]}
    (committed / "smoke.json").write_text(json.dumps(held))
    with pytest.raises(SystemExit, match="holds 3000 rounds and up to 3 finished seeds"):
        script.main(["smoke", "--stage", "report", "--out", str(out), "--results", str(committed)])
    assert json.loads((committed / "smoke.json").read_text()) == held
    # as many rounds, fewer finished seeds: kept too
    held = {"rounds": 40, "rows": [{"seeds": [1]}]}
    (committed / "smoke.json").write_text(json.dumps(held))
    with pytest.raises(SystemExit, match="up to 1 finished seeds"):
        script.main(["smoke", "--stage", "report", "--out", str(out), "--results", str(committed)])
    script.main(
        ["smoke", "--stage", "report", "--out", str(out), "--results", str(committed), "--force"]
    )
    # more rounds but no finished seed (a search's report): nothing to lose
    (committed / "smoke.json").write_text(json.dumps({"rounds": 3000, "rows": [{"seeds": []}]}))
    script.main(["smoke", "--stage", "report", "--out", str(out), "--results", str(committed)])
    assert json.loads((committed / "smoke.json").read_text())["rounds"] == 40
    # a table of searches alone holds no final run at its rounds: a shorter final replaces it
    (committed / "smoke.json").write_text(json.dumps({"rounds": 3000, "rows": [{"seeds": []}]}))
    script.main(["smoke", "--stage", "report", "--out", str(out), "--results", str(committed)])
    assert json.loads((committed / "smoke.json").read_text())["rounds"] == 40
    capsys.readouterr()


def test_a_rate_from_another_methods_search_is_its_mean_effective_rate() -> None:
    """DeComFL at HiSo's mean effective rate: fixed from HiSo's search runs at its chosen rate
    (search seeds, search rounds), before any final run; none until that search is complete."""
    table = dataclasses.replace(
        TWO,
        methods=(
            *TWO.methods,
            Method(
                "decomfl-hiso-rate", "decomfl", (), label="DeComFL at HiSo's rate", rate_from="hiso"
            ),
        ),
    )
    hiso_best = record("hiso", 1.0, 0, {0: 0.5, 25: 0.7, 50: 0.8, 75: 0.9})
    for row, value in zip(hiso_best.history[::25], (0.3, 0.2, 0.1, 9.0), strict=True):
        row["effective_lr"] = value  # the round-75 value lies past the search rounds
    records = [record("decomfl", lr, 0, {0: 0.5, 50: 0.6}) for lr in (1.0, 2.0)]
    records += [hiso_best]
    rows = {r["method"]: r for r in table_rows(table, table.cells, records, search_upto=50)}
    assert rows["decomfl-hiso-rate"]["chosen_lr"] is None  # HiSo's 2.0 has not run
    hiso_other = record("hiso", 2.0, 0, {0: 0.5, 50: 0.6})
    hiso_other.history[50]["effective_lr"] = 5.0  # a rate not chosen: not counted
    rows = {
        r["method"]: r
        for r in table_rows(table, table.cells, [*records, hiso_other], search_upto=50)
    }
    derived = rows["decomfl-hiso-rate"]
    assert rows["hiso"]["chosen_lr"] == 1.0
    assert derived["chosen_lr"] == 0.2  # mean of 0.3, 0.2, 0.1
    assert derived["search_log"] == [
        "rate 0.2: the mean effective rate of hiso at its chosen 1.0 over 3 evaluations of its "
        "search runs (seeds 0, rounds <= 50)"
    ]
    assert derived["lrs_tried"] == {} and derived["bracketed"] is None


def test_two_invocations_on_one_out_keep_each_others_run_configs(tmp_path: Path) -> None:
    """One method's search beside another's in the same OUT: writing one launch's run files
    leaves the other's in place (they were removed, and the other sweep's jobs failed with
    "Could not find 'table_run/...'")."""
    decomfl, hiso = (
        [r for r in search_runs(TWO, TWO.cells) if r.method.name == name]
        for name in ("decomfl", "hiso")
    )
    write_run_configs(tmp_path, decomfl)
    write_run_configs(tmp_path, hiso)
    held = {p.stem: p.read_text() for p in (tmp_path / RUNS_DIR).glob("*/*.yaml")}
    assert held == {r.name: r.config_file() for r in decomfl + hiso}


def test_methods_narrow_a_table_and_keep_what_it_needs() -> None:
    """`--methods hiso`: HiSo and the reference where the table is written, HiSo alone where
    runs are only run; a method whose rate comes from another keeps that one; an unknown name
    is refused with the table's methods."""
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    digits = TABLES["digits"]
    assert [m.name for m in script.only_methods(digits, ["hiso"]).methods] == ["decomfl", "hiso"]
    for stage in ("search", "final"):
        assert [m.name for m in script.only_methods(digits, ["hiso"], stage).methods] == ["hiso"]
    derived = next(m for m in digits.methods if m.rate_from)
    kept = {m.name for m in script.only_methods(digits, [derived.name]).methods}
    assert kept == {"decomfl", derived.name, derived.rate_from}
    with pytest.raises(SystemExit, match="--methods hisoo: not methods of digits"):
        script.only_methods(digits, ["hisoo"])
