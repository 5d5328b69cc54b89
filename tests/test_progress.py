"""`scripts/reproduce.py TABLE --stage status`: how far a table's runs are, read from real run
folders (a smoke search through `hiso-run -m`), without launching or writing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hiso.reproduce.progress import RECENT, Progress, expected_pace, recent_pace
from hiso.run_lock import RunLock

ROOT = Path(__file__).resolve().parents[1]


def reproduce(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "smoke", "--out", str(out)]
    return subprocess.run(
        [*command, *args], cwd=out.parent, env=env, capture_output=True, text=True, timeout=600
    )


def listing(folder: Path) -> dict[str, int | None]:
    """Every path under `folder`, with its file's modification time (None for a folder)."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns if p.is_file() else None
        for p in folder.rglob("*")
    }


def test_pace_is_measured_over_the_last_rounds_by_hand() -> None:
    # round 0 holds the first evaluation (100 s); rounds 1-40 take 10 s, the later ones 2 s
    history = [{"round": 0, "wall_time": 100.0}]
    wall = 100.0
    for rnd in range(1, RECENT + 61):
        wall += 10.0 if rnd <= 40 else 2.0
        history.append({"round": rnd, "wall_time": wall})
    assert recent_pace(history) == 2.0  # the slow rounds 1-40 lie before the last RECENT
    assert recent_pace(history[:31]) == 10.0  # round 0's evaluation is never a round's time
    assert recent_pace(history[:2]) is None


def test_a_run_without_a_pace_is_expected_at_the_pace_of_the_runs_going_now() -> None:
    """Runs finished under a heavier load (36 s a round) do not set the pace of the runs to
    come while others go now (14 s): the present load decides, of the same method first."""

    def run(method: str, state: str, pace: float | None) -> Progress:
        return Progress(f"{method}-{state}", method, 500, 0, state, pace, None)

    before = [run("decomfl", "finished", 36.0), run("hiso", "finished", 30.0)]
    now = [run("decomfl", "running", 14.0), run("hiso", "running", None)]
    assert expected_pace("hiso", before + now) == 14.0  # no hiso pace now: any method's
    assert expected_pace("decomfl", [*before, *now, run("decomfl", "running", 16.0)]) == 15.0
    assert expected_pace("hiso", [*before, *now, run("hiso", "running", 20.0)]) == 20.0
    assert expected_pace("hiso", before) == 30.0  # nothing going: its method's, then the table's
    assert expected_pace("fedkseed", before) == 33.0
    assert expected_pace("hiso", now[1:]) is None


def states(text: str) -> dict[str, str]:
    """Run name -> state, from the status's run lines."""
    return {
        line.split()[0]: " ".join(line.split()[2:4]).removesuffix(" about").split(" ")[0]
        if "not started" not in line
        else "not started"
        for line in text.splitlines()
        if line.startswith("  ") and "/" in line.split()[1]
    }


def test_status_of_a_searched_table_reads_its_runs_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = reproduce(out, "--stage", "status")
    assert before.returncode == 0, before.stderr[-3000:]
    assert not out.exists()  # nothing made
    assert states(before.stdout) == {
        f"{m}-lr{lr}-s0": "not started" for m in ("decomfl", "hiso") for lr in ("0.001", "0.002")
    }
    assert "decomfl: rate not chosen yet, 2 runs to come" in before.stdout
    assert "0 of 8 runs finished" in before.stdout and "8 runs of no known pace" in before.stdout

    search = reproduce(out, "--stage", "search")
    assert search.returncode == 0, search.stderr[-3000:]
    searched = sorted(p.parent.name for p in out.glob("*/summary.json"))
    (out / searched[0] / "summary.json").unlink()  # as a run killed before its end leaves it
    finals = sorted(set(states(reproduce(out, "--stage", "status").stdout)) - set(searched))
    assert len(finals) == 4 and {name[-3:] for name in finals} == {"-s1", "-s2"}
    (out / finals[0]).mkdir()
    files = listing(out)
    lock = RunLock(out / finals[0])  # a final run that a process writes now
    lock.acquire()
    try:
        after = reproduce(out, "--stage", "status", "--jobs", "2")
    finally:
        lock.release()
    assert after.returncode == 0, after.stderr[-3000:]
    found = states(after.stdout)
    assert found == {
        searched[0]: "stopped",
        **{name: "finished" for name in searched[1:]},
        finals[0]: "running",
        **{name: "not started" for name in finals[1:]},
    }
    for name in searched:  # each run's best validation accuracy and its first round
        history = [json.loads(line) for line in (out / name / "metrics.jsonl").open()]
        scored = [(r["val_accuracy"], r["round"]) for r in history if "val_accuracy" in r]
        best = max(scored, key=lambda vr: (vr[0], -vr[1]))
        shown = f"best val. {100 * best[0]:.1f}% (round {best[1]})"
        assert shown in next(line for line in after.stdout.splitlines() if f" {name} " in line)
    assert f"{len(searched) - 1} of {len(searched) + 4} runs finished" in after.stdout
    assert "at 2 at a time" in after.stdout and "no known pace" not in after.stdout
    assert listing(out) == files  # read only (the lock file came and went with this test)


def test_status_of_a_rate_taken_from_another_shows_that_search_and_its_own_finals(
    tmp_path: Path,
) -> None:
    """`--methods decomfl-hiso-rate`: HiSo's search runs (its rate comes from them), and the
    finals of DeComFL at HiSo's rate alone, as the final stage would run them."""
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "digits", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run(
        [*command, "--stage", "status", "--methods", "decomfl-hiso-rate"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    searched = {name for name in states(shown) if name.startswith("hiso-")}
    assert searched and all(name.rsplit("-", 1)[1] in ("s0", "s1") for name in searched)
    assert "decomfl-hiso-rate: rate not chosen yet, 3 runs to come" in shown
    assert "  hiso: rate not chosen yet" not in shown
    assert not out.exists()
