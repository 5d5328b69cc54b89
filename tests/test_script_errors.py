"""The scripts' bad input (hiso/script_errors.py): a summary.json that is not JSON or not an
object, an output they cannot write, a reproduce --out that is a file: one line, exit code 2, no
traceback, as hiso-run's input errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_unwritten_outputs import in_namespace, needs_mounts

from hiso.sweep_plot import main as plot
from hiso.sweep_summary import main as summarize

BIN = Path(sys.executable).parent


def one_line(err: str, prog: str, *parts: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert err.count("\n") == 1 and err.startswith(f"{prog}: "), err
    for part in parts:
        assert part in err, (part, err)


def a_sweep(root: Path, summary: str) -> Path:
    run_dir = root / "sweep" / "0"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(summary)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"round": 0, "val_accuracy": 0.5}) + "\n")
    return root / "sweep"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [('{"status": "finished"', "not JSON (Expecting"), ("[1, 2]", "a JSON array, not an object")],
)
def test_summarize_refuses_a_summary_that_is_no_json_object(
    summary: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = a_sweep(tmp_path, summary)
    with pytest.raises(SystemExit) as stop:
        summarize([str(sweep)])
    assert stop.value.code == 2
    one_line(capsys.readouterr().err, "hiso-summarize", str(sweep / "0" / "summary.json"), expected)


def test_summarize_and_plot_refuse_an_output_they_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = a_sweep(tmp_path, json.dumps({"status": "finished", "best_val_accuracy": 0.5}))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(SystemExit) as stop:
        summarize([str(sweep), "-o", str(blocked / "table")])
    assert stop.value.code == 2
    one_line(capsys.readouterr().err, "hiso-summarize", "cannot write the sweep's table")
    with pytest.raises(SystemExit) as stop:
        plot([str(sweep), "-o", str(blocked / "curves.png")])
    assert stop.value.code == 2
    one_line(capsys.readouterr().err, "hiso-plot", "cannot write the figure", str(blocked))


@needs_mounts
def test_summarize_on_a_read_only_file_system(tmp_path: Path) -> None:
    sweep = a_sweep(tmp_path, json.dumps({"status": "finished", "best_val_accuracy": 0.5}))
    (tmp_path / "ro").mkdir()
    script = f"""
        mount -t tmpfs -o ro,size=64k tmpfs {tmp_path / "ro"}
        {BIN / "hiso-summarize"} {sweep} -o {tmp_path / "ro" / "table"}
    """
    result = in_namespace(script, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    one_line(result.stderr, "hiso-summarize", "Read-only file system (EROFS)")


def test_reproduce_refuses_an_out_that_is_a_file(tmp_path: Path) -> None:
    command = shutil.which("hiso-reproduce", path=str(BIN))
    assert command is not None
    (tmp_path / "a-file").write_text("")
    result = subprocess.run(
        [command, "digits", "--stage", "report", "--out", str(tmp_path / "a-file")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    one_line(result.stderr, "reproduce", "--out", "it is a file")
