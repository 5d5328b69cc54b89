"""Every experiment config and every table of scripts/reproduce.py composes and validates offline
(no model loads), and each encodes the paper's setting it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiso import cli
from hiso.config import compose_config
from hiso.reproduce.sweep import GROUP, Run
from hiso.reproduce.tables import TABLES, Table
from hiso.tracking.records import read_jsonl

import lm_fixtures

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_composes_and_validates(name: str) -> None:
    compose_config([f"+experiment={name}"])


def representative_runs(table: Table) -> list[Run]:
    """Each method on the first cell where it runs, and each cell with its first method."""
    runs = {}
    for method in table.methods:
        cell = next(c for c in table.cells if method in table.cell_methods(c))
        # a method whose rate comes from another's runs at any rate: its source's first
        lrs = method.lrs or table.method(method.rate_from).lrs
        runs[(cell.name, method.name)] = Run(cell, method, lrs[0], table.seeds[-1])
    for cell in table.cells:
        method = table.cell_methods(cell)[0]
        runs.setdefault((cell.name, method.name), Run(cell, method, method.lrs[-1], 0))
    return list(runs.values())


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_runs_compose_and_validate(name: str) -> None:
    table = TABLES[name]
    assert table.reference in {m.name for m in table.methods}
    assert table.seeds and all(m.lrs or m.rate_from for m in table.methods)
    assert all(table.method(m.rate_from).lrs for m in table.methods if m.rate_from)
    if table.search_rounds and table.search_rounds < table.rounds:
        # a search run continued to the final rounds must see the schedule it started with
        cfg = compose_config([f"+experiment={table.experiment}", *table.overrides])
        assert cfg.optim.lr_schedule == "constant"
    for run in representative_runs(table):
        cfg = compose_config(run.overrides(table, table.rounds))
        assert cfg.algo.name == run.method.algo
        assert cfg.optim.lr == run.lr and cfg.seed == run.seed
        assert cfg.federation.rounds == table.rounds
        assert (run.cell.model or cfg.model.name) == cfg.model.name
        assert (run.cell.dataset or cfg.dataset.name) == cfg.dataset.name


def test_a_run_file_composes_like_its_plain_command(tmp_path: Path) -> None:
    """The sweep's table_run config file and the run's recorded `hiso-run` overrides agree."""
    table = TABLES["hiso-paper"]
    cell = next(c for c in table.cells if c.dataset == "squad")
    run = Run(cell, table.method("hiso"), 5e-6, 2)
    path = tmp_path / GROUP / f"{run.name}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(run.config_file())
    swept = compose_config(
        [
            f"+experiment={table.experiment}",
            *table.overrides,
            "federation.rounds=7",
            f"hydra.searchpath=[file://{tmp_path}]",
            f"+{GROUP}={run.name}",
        ]
    )
    plain = compose_config(run.overrides(table, 7))
    assert swept == plain
    assert plain.optim.batch_size == 8 and plain.model.name == cell.model


def test_hiso_paper_setting() -> None:
    for algo in ("hiso", "decomfl"):
        cfg = compose_config(["+experiment=hiso-paper", f"algo={algo}", "model=opt-2.7b"])
        f, a = cfg.federation, cfg.algo
        assert (f.num_clients, f.clients_per_round, f.local_steps, f.eval_every) == (6, 2, 1, 25)
        assert (f.partition, f.dirichlet_alpha) == ("dirichlet", 1.0)
        assert (a.num_perturbations, a.mu, a.difference) == (5, 1e-3, "forward")
        assert cfg.optim.batch_size == 16 and cfg.model.forward_dtype == "float32"
    assert cfg.model.hub_id == "facebook/opt-2.7b"
    assert compose_config(["+experiment=hiso-paper", "algo=hiso"]).algo.beta == 0.95


def test_decomfl_paper_settings() -> None:
    table = TABLES["decomfl-paper"]
    cfg = compose_config(
        Run(table.cells[0], table.method("decomfl-p10"), 1e-6, 0).overrides(table, 9)
    )
    assert (cfg.federation.num_clients, cfg.federation.clients_per_round) == (8, 2)
    assert cfg.algo.num_perturbations == 10 and cfg.optim.batch_size == 32
    assert cfg.algo.difference == "forward" and cfg.federation.local_steps == 1
    lora = compose_config(["+experiment=decomfl-paper-lora", "algo=decomfl"])
    assert (lora.model.lora.r, lora.model.lora.alpha) == (8, 16)
    assert list(lora.model.lora.targets) == ["q_proj", "v_proj"]
    assert lora.model.name == "opt-125m" and lora.federation.num_clients == 8


def test_cnn_setting_transposed_to_digits_keeps_whole_batches() -> None:
    cfg = compose_config(["+experiment=decomfl-paper-cnn", "algo=decomfl"])
    f, a, o = cfg.federation, cfg.algo, cfg.optim
    assert (f.local_steps, a.num_perturbations, a.difference) == (4, 20, "central")
    assert (o.lr, o.lr_schedule, o.momentum, o.batch_size) == (1e-3, "constant", 0.9, 32)
    assert f.clients_per_round / f.num_clients == 10 / 100
    train = 1437 - min(500, 1437 // 10)  # digits' training images less the validation split
    assert train // f.num_clients >= o.batch_size


def test_movie_study_setting() -> None:
    cfg = compose_config(["+experiment=movie-study", "algo=hiso"])
    f, a, d = cfg.federation, cfg.algo, cfg.dataset
    assert cfg.model.name == "smollm2-135m" and d.name == "movie-reviews"
    assert (f.num_clients, f.clients_per_round, f.local_steps) == (6, 2, 1)
    assert (f.partition, f.dirichlet_alpha, f.rounds, f.eval_every) == ("dirichlet", 1.0, 500, 25)
    assert f.test_every == 0 and d.max_test is None and d.validation_size == 500
    assert (a.num_perturbations, a.mu, a.difference, a.beta) == (5, 1e-3, "forward", 0.95)
    assert cfg.model.forward_dtype == "float32" and cfg.optim.batch_size == 8
    assert cfg.threads == 1 and cfg.checkpoint.every == 25


def test_movie_study_runs_on_a_tiny_model(tmp_path: Path) -> None:
    """The study's experiment end to end on a tiny random LLaMA for a few rounds: validation on
    every evaluation round, the test split only at round 0 and the last round."""
    model, tokenizer = lm_fixtures.tiny_llama()
    checkpoint = lm_fixtures.save_checkpoint(model, tokenizer, tmp_path / "tiny")
    overrides = [
        "+experiment=movie-study",
        "algo=hiso",
        f"model.path={checkpoint}",
        "model.name=tiny",
        "dataset.max_train=120",
        "dataset.max_test=24",
        "dataset.validation_size=24",
        "dataset.max_length=32",
        "federation.rounds=4",
        "federation.eval_every=2",
        "logger=none",
    ]
    summary = cli.run(compose_config(overrides), tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["round"] for r in rows if "val_accuracy" in r] == [0, 2, 4]
    assert [r["round"] for r in rows if "test_accuracy" in r] == [0, 4]
    assert summary["final_test_accuracy"] == rows[-1]["test_accuracy"]
    assert summary["rounds"] == 4


def test_digits_mezo_is_centralised_with_one_perturbation() -> None:
    table = TABLES["digits"]
    cfg = compose_config(Run(table.cells[0], table.method("mezo"), 1e-3, 0).overrides(table, 9))
    assert (cfg.federation.num_clients, cfg.federation.clients_per_round) == (1, 1)
    assert (cfg.algo.num_perturbations, cfg.algo.difference) == (1, "central")
