"""Bad input ends `hiso-run` before anything heavy loads: one message naming the problem, exit
code 2, no traceback, no model built, no summary. Each case runs the console script's main
in-process, the model builder replaced by one that fails the test. (The checks called directly,
and real processes' exit codes: tests/test_input_checks.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_inputs import DIGITS, ROWS, TEXT, Case, run_main, write_files

CASES = [
    # types
    Case("type-float", (*DIGITS, "optim.lr=fast"), ("optim.lr=fast", "Float")),
    Case("type-int", (*DIGITS, "federation.num_clients=two"), ("num_clients=two", "Integer")),
    Case("type-seed", (*DIGITS, "seed=1.5"), ("seed=1.5", "Integer")),
    Case("type-bool", (*DIGITS, "federation.concat_clients=maybe"), ("concat_clients", "maybe")),
    Case("type-parse", (*DIGITS, "optim.lr=[1,"), ("cannot parse 'optim.lr=[1,'",)),
    # ranges
    Case("range-lr", (*DIGITS, "optim.lr=-1"), ("optim.lr=-1.0", "> 0")),
    Case("range-eval-batch", (*DIGITS, "dataset.eval_batch_size=0"), ("eval_batch_size=0", ">= 1")),
    Case("range-channels", (*DIGITS, "model.channels=0"), ("model.channels=0", ">= 1")),
    Case("range-hidden", (*DIGITS, "model.hidden=-3"), ("model.hidden=-3", ">= 1")),
    Case("range-max-train", (*DIGITS, "dataset.max_train=0"), ("max_train=0", "null", ">= 1")),
    Case("range-max-test", (*DIGITS, "dataset.max_test=-70"), ("max_test=-70", ">= 1")),
    Case("range-seed", (*DIGITS, "seed=-1"), ("seed=-1", "from 0 to")),
    Case(
        "range-validation",
        (*DIGITS, "dataset.validation_size=5000"),
        ("validation_size=5000", "fewer than the 1437 training examples"),
    ),
    Case(
        "range-skipped",
        (*DIGITS, "federation.max_skipped_rounds=0"),
        ("max_skipped_rounds=0", ">= 1"),
    ),
    Case("range-momentum", (*DIGITS, "optim.momentum=1"), ("optim.momentum=1.0", "[0, 1)")),
    Case(
        "range-sampled",
        (*DIGITS, "federation.clients_per_round=9"),
        ("clients_per_round=9", "from 1 to federation.num_clients (8)"),
    ),
    Case("range-choice", (*DIGITS, "nan_policy=ignore"), ("nan_policy='ignore'", "stop, skip")),
    # NaN and infinity, in any float field
    Case("nan-lr", (*DIGITS, "optim.lr=nan"), ("optim.lr=nan", "finite")),
    Case("nan-mu", (*DIGITS, "algo.mu=nan"), ("algo.mu=nan", "finite")),
    Case("nan-alpha", (*DIGITS, "federation.dirichlet_alpha=nan"), ("dirichlet_alpha=nan",)),
    Case("inf-beta", (*DIGITS, "algo.beta=inf"), ("algo.beta=inf", "finite")),
    Case("inf-eps", (*DIGITS, "algo.eps=-inf"), ("algo.eps=-inf", "finite")),
    Case("nan-target", (*DIGITS, "federation.target_accuracy=nan"), ("target_accuracy=nan",)),
    Case("inf-seed", (*DIGITS, "seed=1e400"), ("seed=1e400", "Integer")),
    Case("nan-server-lr", (*DIGITS, "algo=fedadam", "algo.server_lr=nan"), ("server_lr=nan",)),
    Case("inf-lora-alpha", (*DIGITS, "model.lora.alpha=inf"), ("model.lora.alpha=inf",)),
    # unknown keys, with and without +
    Case("typo", (*DIGITS, "optim.lrr=1"), ("optim.lrr=1", "no such field", "optim.lr?")),
    Case("plus-typo", (*DIGITS, "+optim.lrr=1"), ("optim.lrr=1", "no such field", "optim.lr?")),
    Case("plus-top", (*DIGITS, "+sed=3"), ("sed=3", "no such field", "did you mean seed?")),
    Case("plus-nested", (*DIGITS, "+federation.rate.x=2"), ("federation.rate", "no such field")),
    Case("plain-columns", (*DIGITS, "dataset.columns.label=y"), ("+dataset.columns.label=y",)),
    # group options
    Case("group-algo", (*DIGITS, "algo=sgd"), ("algo/sgd", "options: decomfl, fedadagrad")),
    Case("group-model", (*DIGITS, "model=gpt5"), ("model/gpt5", "cnn")),
    Case("group-experiment", ("+experiment=nope",), ("experiment/nope", "digits")),
    Case("config-dir", ("--config-dir", "{tmp}/nope", *DIGITS), ("nope is not a directory",)),
    # dataset name and template
    Case("vision-name", (*DIGITS, "dataset.name=mnist"), ("dataset.name='mnist'", "digits")),
    Case("text-name", (*TEXT, "dataset.name=imdb"), ("dataset.name='imdb'", "sst2")),
    Case("template", (*TEXT, "dataset.template=nope"), ("dataset.template='nope'", "sst2")),
    Case("template-fit", (*TEXT, "dataset.template=rte"), ("template 'rte'", "does not fit")),
    Case("kind", (*DIGITS, "model=opt-125m"), ("model.kind='hf'", "'cnn' for vision")),
    # data files
    Case("file-missing", (*TEXT, "dataset.data_files.test={tmp}/nope.csv"), ("nope.csv", "not")),
    Case("file-unset", (*TEXT, "dataset.data_files.test=null"), ("dataset.data_files.test",)),
    Case(
        "file-extension",
        (*TEXT, "dataset.data_files.train={tmp}/train.txt"),
        ("data_files.train=", "train.txt", ".csv, .tsv, .json, .jsonl, .parquet"),
        {"train.txt": "sentence,label\nfine,1\n"},
    ),
    Case(
        "file-directory",
        (*TEXT, "dataset.data_files.train={tmp}/folder.csv"),
        ("folder.csv", "is a directory"),
        {"folder.csv/inside.csv": ROWS},
    ),
    Case("csv-empty", TEXT, ("train.csv", "empty"), {"train.csv": ""}),
    Case(
        "csv-header-only",
        TEXT,
        ("train.csv", "header", "no rows"),
        {"train.csv": "sentence,label\n"},
    ),
    Case(
        "csv-encoding",
        TEXT,
        ("train.csv", "line 3", "not UTF-8", "0xe9"),
        {"train.csv": "sentence,label\nfine,1\ncaf\xe9 au lait,0\n".encode("latin-1")},
    ),
    Case(
        "csv-ragged",
        TEXT,
        ("train.csv", "line 4 has 3 fields", "header has 2"),
        {"train.csv": "sentence,label\n" + ROWS[:60] + "x,1,extra\n"},
    ),
    Case(
        "csv-quote",
        TEXT,
        ("train.csv", "line 2", "not valid CSV"),
        {"train.csv": 'sentence,label\n"never closed,1\nmore,0\n'},
    ),
    Case(
        "csv-blank-label",
        TEXT,
        ("train.csv", "line 3: ''", "label set", "0..1"),
        {"train.csv": "sentence,label\nfine,1\nno label here,\n" + ROWS},
    ),
    Case(
        "csv-fraction-label",
        TEXT,
        ("test.csv", "line 2: '0.7'", "label set"),
        {"test.csv": "sentence,label\nso so,0.7\n" + ROWS},
    ),
    Case(
        "csv-column",
        TEXT,
        ("train.csv", "column 'label'", "columns present: ['sentence', 'polarity']"),
        {"train.csv": "sentence,polarity\n" + ROWS},
    ),
    Case(
        "columns-key",
        (*TEXT, "+dataset.columns.sentense=text"),
        ("dataset.columns.sentense='text'", "sentence, label"),
    ),
    Case(
        "jsonl-corrupt",
        (*TEXT, "dataset.data_files.train={tmp}/train.jsonl"),
        ("train.jsonl", "line 2 is not valid JSON"),
        {"train.jsonl": '{"sentence": "fine", "label": 1}\n{"sentence": "broken", "lab\n'},
    ),
    Case(
        "jsonl-not-object",
        (*TEXT, "dataset.data_files.train={tmp}/train.jsonl"),
        ("train.jsonl", "line 2 holds a list"),
        {"train.jsonl": '{"sentence": "fine", "label": 1}\n["a", 1]\n'},
    ),
    Case(
        "jsonl-null",
        (*TEXT, "dataset.data_files.train={tmp}/train.jsonl"),
        ("train.jsonl", "line 2", "'sentence' is null"),
        {"train.jsonl": '{"sentence": "fine", "label": 1}\n{"sentence": null, "label": 0}\n'},
    ),
    Case(
        "parquet-corrupt",
        (*TEXT, "dataset.data_files.train={tmp}/train.parquet"),
        ("train.parquet", "not a readable parquet file"),
        {"train.parquet": b"PAR1 this is not parquet"},
    ),
    # shard sizes
    Case(
        "shards-digits",
        (*DIGITS, "federation.num_clients=1000", "federation.clients_per_round=2"),
        ("num_clients=1000", "1294 training examples", "over 1000 clients", "at most 40"),
    ),
    Case(
        "shards-max-train",
        (*DIGITS, "dataset.max_train=4"),
        ("num_clients=8", "4 training examples", "over 8 clients give 0 each"),
    ),
    Case(
        "shards-text",
        (*TEXT, "federation.num_clients=6", "optim.batch_size=4"),
        ("num_clients=6", "8 training examples", "over 6 clients give 1 each", "at most 2"),
    ),
    # output directory and logger
    Case(
        "output-dir",
        (*DIGITS, "hydra.run.dir={tmp}/train.csv/run"),
        ("hydra.run.dir=", "train.csv is a file"),
    ),
    Case(
        "empty-run-dir",
        (*DIGITS, "hydra.run.dir="),
        ("hydra.run.dir=''", "an empty one would write into the current one"),
    ),
    Case(
        "empty-sweep-dir",
        ("-m", *DIGITS, "hydra.sweep.dir="),
        ("hydra.sweep.dir=''", "an empty one would write into the current one"),
    ),
    Case(
        "wandb-online",
        (*DIGITS, "logger=default", "logger.wandb.mode=online"),
        ("logger.wandb.mode='online'", "WANDB_API_KEY", "wandb login"),
    ),
    # multirun: every job is checked before the first one starts
    Case("multirun-nan", ("-m", *DIGITS, "optim.lr=1e-3,nan"), ("optim.lr=nan", "finite")),
    Case(
        "multirun-shards",
        ("-m", *DIGITS, "federation.num_clients=4,1000"),
        ("num_clients=1000", "1294 training examples"),
    ),
    Case("multirun-typo", ("-m", *DIGITS, "optim.lrr=1,2"), ("optim.lrr='1,2'", "no such field")),
    Case("multirun-group", ("-m", *DIGITS, "algo=hiso,sgd"), ("algo/sgd",)),
    Case(
        "joblib-no-jobs",
        ("-m", *DIGITS, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"),
        ("hydra.launcher.n_jobs=0 is not allowed", "1 or more"),
    ),
    Case(
        "joblib-fewer-than-no-jobs",
        ("-m", *DIGITS, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=-100000"),
        ("hydra.launcher.n_jobs=-100000 is not allowed", "-1: all of them"),
    ),
    Case(
        "multirun-output",
        ("-m", *DIGITS, "algo=hiso,decomfl", "hydra.sweep.dir={tmp}/train.csv/sweep"),
        ("hydra.sweep.dir=", "train.csv is a file"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_stops_before_the_model(
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_model: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    write_files(tmp_path, case.files)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    if not any(a.startswith(("hydra.run.dir", "hydra.sweep.dir")) for a in args):
        args += [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]
    code = run_main(args, monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    message = err.strip()
    assert message.startswith("hiso-run: ") and message.count("hiso-run:") == 1, err
    assert "Traceback" not in err and "\n" not in message, err
    for expected in case.expect:
        assert expected in message, (expected, message)
    assert not list(tmp_path.rglob("summary.json")) and not list(tmp_path.rglob("metrics.jsonl"))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 35 and len({c.id for c in CASES}) == len(CASES)
