"""hiso.reproduce on synthetic runs: the learning-rate search on validation, the table's rows
(timing to the reference's best), failed runs, the report's commands, the noise reading, the
curvature trajectory, the band plot and the run configs a sweep writes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from hiso.reproduce import curvature
from hiso.reproduce.aggregate import RunRecord, method_search, table_rows
from hiso.reproduce.noise import compare
from hiso.reproduce.report import markdown, results_table
from hiso.reproduce.sweep import RUNS_DIR, pending_runs, search_runs, write_run_configs
from hiso.reproduce.tables import TABLES, Cell, Method, Paper
from hiso.tracking.plots import plot_bands

from synthetic_runs import TWO, history, record


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
    for row, value in zip(hiso_best.history[::25], (0.9, 0.1, 0.1, 9.0), strict=True):
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
    # over rounds 0-50: (0.9 + 0.1) / 2 for 25 rounds, then 0.1 for 25 (the mean of the three
    # evaluations, 0.37, would count round 0's value, H = 1, as a third of the run)
    assert derived["chosen_lr"] == 0.3
    assert derived["search_log"] == [
        "rate 0.3: the mean effective rate of hiso at its chosen 1.0 over the rounds of its "
        "search runs (seeds 0, rounds <= 50; 3 evaluations, each stretch between two weighted "
        "by its rounds)"
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
