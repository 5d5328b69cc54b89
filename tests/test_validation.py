"""Model selection on a validation split carved from the training data; the test split is only
reported, and the model of the best validation round is the one the test split scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hiso.data.validation import carve_validation, validation_size
from hiso.federation.simulator import Simulation
from hiso.models import build_model
from hiso.optim.curvature import CurvatureProbe
from hiso.schema import ConfigError
from hiso.tasks import build_task

from configs import CPU, digits_config, digits_simulation


def test_automatic_size_is_500_or_ten_percent() -> None:
    assert validation_size(None, 1437) == 143
    assert validation_size(None, 8568) == 500
    assert validation_size(None, 9) == 0
    assert validation_size(40, 1437) == 40
    with pytest.raises(ConfigError, match=r"dataset\.validation_size"):
        validation_size(100, 100)


def test_carve_partitions_the_training_indices_by_its_own_seed() -> None:
    train, val = carve_validation(1000, 120, seed=0)
    assert len(val) == 120 and len(train) == 880
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    again, other = carve_validation(1000, 120, seed=0)[1], carve_validation(1000, 120, seed=1)[1]
    assert np.array_equal(val, again) and not np.array_equal(val, other)
    assert not np.array_equal(val, np.arange(120))  # drawn, not the first examples


def test_digits_selects_on_validation_and_clients_never_see_it() -> None:
    sim = digits_simulation()
    assert sim.task.heldout_splits() == ("validation", "test")
    assert sim.task.num_train == 1437 - 143
    shard_total = sum(len(c.indices) for c in sim.clients)
    assert shard_total <= sim.task.num_train
    # no client trains on a validation image (the digits have no duplicate across the two)
    cpu = torch.device("cpu")
    held = {image.numpy().tobytes() for image in sim.task._heldout["validation"][0]}
    for client in sim.clients:
        images = sim.task.batch([int(i) for i in client.indices], cpu)["images"]
        assert not any(image.numpy().tobytes() in held for image in images)
    unseeded = digits_simulation("seed=5")
    val = sim.task._heldout["validation"][1]
    assert torch.equal(val, unseeded.task._heldout["validation"][1])  # the run seed keeps it


BEST = ("algo=decomfl", "optim.lr_schedule=constant", "optim.lr=2e-2", "federation.eval_every=2")


def test_test_split_scores_the_model_of_the_best_validation_round(tmp_path: Path) -> None:
    """In this setting validation accuracy peaks before the last of 12 rounds; the test figure at
    the best round must be what a run stopped at that round scores, not the final model's."""
    sim = digits_simulation(*BEST, "federation.rounds=12")
    history: list[dict] = []
    extras = sim.run(history.append)
    scored = {r["round"]: r["val_accuracy"] for r in history if "val_accuracy" in r}
    best = extras["best_round"]
    assert 0 < best < 12 and best == max(scored, key=lambda r: (scored[r], -r))
    assert [r["round"] for r in history if "test_accuracy" in r] == [0, 12]

    stopped = digits_simulation(*BEST, f"federation.rounds={best}")
    stopped_history: list[dict] = []
    stopped.run(stopped_history.append)
    assert extras["test_accuracy_at_best"] == stopped_history[-1]["test_accuracy"]
    assert extras["test_loss_at_best"] == stopped_history[-1]["test_loss"]
    assert extras["test_loss_at_best"] != history[-1]["test_loss"]  # not the final model


def test_best_model_file_is_written_where_asked(tmp_path: Path) -> None:
    cfg = digits_config(*BEST, "federation.rounds=8")
    model, _ = build_model(cfg.model, CPU, cfg.seed)
    path = tmp_path / "best-model.pt"
    sim = Simulation(cfg, model, build_task(cfg, None), CPU, path)
    sim.run(lambda record: None)
    saved = torch.load(path)
    assert len(saved) == len(sim.master) and saved[0].dtype == torch.float32


def test_no_validation_split_selects_nothing() -> None:
    sim = digits_simulation("dataset.validation_size=0", "federation.eval_every=4")
    history: list[dict] = []
    extras = sim.run(history.append)
    assert sim.task.num_train == 1437
    assert "val_accuracy" not in {k for r in history for k in r}
    assert [r["round"] for r in history if "test_accuracy" in r] == [0, 4, 8, 12]
    assert extras["best_round"] is None and extras["test_accuracy_at_best"] is None


def test_a_run_without_test_scoring_never_evaluates_the_test_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """federation.score_test=false (a rate search): the same trajectory and validation scores
    as a run that scores test, and not one test evaluation, not even of the best round."""
    scored = digits_simulation(*BEST, "federation.rounds=8")
    scored_history: list[dict] = []
    scored.run(scored_history.append)
    sim = digits_simulation(*BEST, "federation.rounds=8", "federation.score_test=false")
    splits: list[str] = []
    evaluate = sim.evaluation.evaluate

    def recorded(split: str, rnd: int | None = None) -> dict[str, float]:
        splits.append(split)
        return evaluate(split, rnd)

    monkeypatch.setattr(sim.evaluation, "evaluate", recorded)
    history: list[dict] = []
    extras = sim.run(history.append)
    assert splits == ["validation"] * 5 and not any("test_accuracy" in r for r in history)
    vals = [(r["round"], r["val_accuracy"]) for r in history if "val_accuracy" in r]
    assert vals == [(r["round"], r["val_accuracy"]) for r in scored_history if "val_accuracy" in r]
    assert "test_accuracy_at_best" not in extras and "test_correct" not in extras


def test_no_test_scoring_needs_a_validation_split() -> None:
    with pytest.raises(ConfigError) as error:
        digits_simulation("dataset.validation_size=0", "federation.score_test=false")
    assert error.value.key == "federation.score_test"


def test_curvature_probe_quantiles_and_exact_floor_fraction() -> None:
    gen = torch.Generator().manual_seed(0)
    h = [torch.rand(300_000, generator=gen), torch.rand(50, 40, generator=gen)]
    h[0][:30_000] = 1e-8
    probe = CurvatureProbe([t.shape for t in h], torch.device("cpu"), seed=0)
    summary = probe.summary(h, floor=1e-8)
    values = torch.cat([t.reshape(-1) for t in h]).double()
    assert summary["curvature_floor_fraction"] == 30_000 / values.numel()
    assert summary["curvature_mean"] == pytest.approx(float(values.mean()), rel=1e-9)
    inverse = float(values.reciprocal().mean())
    assert summary["curvature_inverse_mean"] == pytest.approx(inverse, rel=1e-6)
    for q in (5, 50, 95):
        exact = float(torch.quantile(values[::7], q / 100))
        assert summary[f"curvature_q{q:02d}"] == pytest.approx(exact, abs=0.01)


def test_hiso_logs_curvature_with_each_evaluation() -> None:
    sim = digits_simulation("algo=hiso", "federation.eval_every=6")
    history: list[dict] = []
    sim.run(history.append)
    rows = [r for r in history if "curvature_q50" in r]
    assert [r["round"] for r in rows] == [0, 6, 12]
    assert rows[0]["curvature_q05"] == rows[0]["curvature_q95"] == 1.0  # H_0 = 1
    assert rows[-1]["curvature_q50"] != 1.0


def test_a_global_curvature_is_logged_as_its_one_value() -> None:
    sim = digits_simulation("algo=hiso", "algo.curvature_scope=global", "federation.eval_every=6")
    history: list[dict] = []
    sim.run(history.append)
    last = [r for r in history if "curvature_q50" in r][-1]
    assert sim.algorithm.state.curvature is not None
    h = float(sim.algorithm.state.curvature[0])
    assert h != 1.0 and all(float(t) == h for t in sim.algorithm.state.curvature)
    assert last["curvature_q05"] == last["curvature_q95"] == last["curvature_mean"] == h
    assert last["curvature_inverse_mean"] == pytest.approx(1 / h)


def test_a_long_evaluation_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digits CNN evaluates in milliseconds: no word; with the bar lowered, each split's
    evaluation is announced with its size before it starts."""
    import hiso.federation.evaluation as evaluation

    quiet = digits_simulation("federation.rounds=2", "federation.eval_every=0")
    heard: list[str] = []
    quiet.evaluation.announce = heard.append
    quiet.run(lambda record: None)
    assert heard == []
    monkeypatch.setattr(evaluation, "ANNOUNCED_EVALUATION", 1)
    loud = digits_simulation("federation.rounds=2", "federation.eval_every=0")
    loud.evaluation.announce = heard.append
    loud.run(lambda record: None)
    assert heard[:2] == [
        "evaluating 143 examples of the validation split",
        "evaluating 360 examples of the test split",
    ]
