"""scripts/reproduce.py as a user runs it: its arguments, the report stage and where results
go, and a real table on digits through `hiso-run -m`, interrupted and resumed, its finals apart
from its search seeds, and through the joblib launcher."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hiso.reproduce.sweep import final_runs, search_runs
from hiso.reproduce.tables import TABLES

ROOT = Path(__file__).resolve().parents[1]


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
    # its source's rate is read for it, but only the named method's finals run
    final = script.only_methods(digits, [derived.name], "final")
    assert {m.name for m in final.methods} == {derived.name, derived.rate_from}
    chosen = {f"/{m.name}": 1e-3 for m in final.methods}
    runs = final_runs(final, final.cells, chosen, [derived.name])
    assert runs and {run.method.name for run in runs} == {derived.name}
    assert len(final_runs(final, final.cells, chosen)) == 2 * len(runs)
    with pytest.raises(SystemExit, match="--methods hisoo: not methods of digits"):
        script.only_methods(digits, ["hisoo"])
