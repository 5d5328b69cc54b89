"""A prompt's column holds text: a list, an object or a number in a JSON file is refused with the
file and the line or row (it was rendered into the prompt as a Python repr), and a CSV cell as
long as its file is read (the csv module refused cells over 131,072 characters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiso.config import compose_config
from hiso.tasks import read_task_data

from cli_inputs import ROWS, TEXT, Case, run_main, write_files

CASES = [
    Case(
        "jsonl-list-text",
        (*TEXT, "dataset.data_files.train={tmp}/train.jsonl"),
        ("train.jsonl", "line 2", "'sentence'", "holds a list (['a', 'b'])", "a string"),
        {"train.jsonl": '{"sentence": "fine", "label": 1}\n{"sentence": ["a", "b"], "label": 0}\n'},
    ),
    Case(
        "json-dict-text",
        (*TEXT, "dataset.data_files.test={tmp}/test.json"),
        ("test.json", "row 2", "'sentence'", "holds a dict", "a string"),
        {"test.json": '[{"sentence": "ok", "label": 1}, {"sentence": {"t": 1}, "label": 0}]'},
    ),
    Case(
        "jsonl-number-text",
        (*TEXT, "dataset.data_files.train={tmp}/train.jsonl"),
        ("train.jsonl", "line 2", "holds a float (2.5)"),
        {"train.jsonl": '{"sentence": "fine", "label": 1}\n{"sentence": 2.5, "label": 1}\n'},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_column_the_prompt_shows_holds_text(
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_model: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, case.files)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    code = run_main([*args, f"hydra.run.dir={tmp_path}/run"], monkeypatch)
    message = capsys.readouterr().err.strip()
    assert code == 2 and message.count("hiso-run:") == 1 and "Traceback" not in message, message
    for expected in case.expect:
        assert expected in message, (expected, message)


def test_a_csv_cell_of_600000_characters_is_read(tmp_path: Path) -> None:
    long = "a very long review " * 31_579  # 600,001 characters, over the csv module's default
    write_files(tmp_path, {"train.csv": f"sentence,label\n{long},1\n" + ROWS})
    args = [a.replace("{tmp}", str(tmp_path)) for a in TEXT]
    data = read_task_data(compose_config(args))
    examples = [*data.train, *data.heldout["validation"]]
    assert max(len(e["sentence"]) for e in examples) == len(long) > 600_000
