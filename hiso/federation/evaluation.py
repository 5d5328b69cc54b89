"""Evaluation and best-round selection: what each round scores on the held-out splits, the model of
the best validation round (kept on disk until the end, when the test split scores it), and which
test examples the final and the best round got right (hiso/tracking/predictions.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hiso.federation.forwards import Forwards
from hiso.federation.processes import Processes
from hiso.optim.zo import evaluated_at
from hiso.schema import ConfigError, RunConfig
from hiso.tasks.base import HeldOut
from hiso.tracking import predictions
from hiso.tracking.unwritten import writing

# metric-name prefix of each held-out split
PREFIX: dict[HeldOut, str] = {"validation": "val", "test": "test"}
# examples x parameters of an evaluation worth a word before it starts (seconds on a CPU): a
# language model's held-out split, never the digits CNN's
ANNOUNCED_EVALUATION = 10**9


class Evaluation:
    """Scores the model that `params` run on, whose float32 storage is `master`; `work` is
    scratch for the best round's model. `best_model_path`: where that model is kept (default: a
    temporary file, removed after the run)."""

    def __init__(
        self,
        cfg: RunConfig,
        forwards: Forwards,
        params: Sequence[torch.nn.Parameter],
        master: Sequence[torch.Tensor],
        work: Sequence[torch.Tensor],
        processes: Processes,
        best_model_path: Path | None = None,
    ) -> None:
        self.cfg, self.forwards, self.processes = cfg, forwards, processes
        self.params, self.master, self.work = params, master, work
        self.num_parameters = sum(x.numel() for x in master)
        task = forwards.task
        # selection on the validation split when the task has one (else nothing is selected)
        self.selection: HeldOut | None = (
            "validation" if "validation" in task.heldout_splits() else None
        )
        if not cfg.federation.score_test and self.selection is None:
            raise ConfigError(
                "federation.score_test",
                False,
                "true for a task without a validation split (dataset.validation_size: 0), "
                "whose test split is the only one a run scores",
            )
        self.best_accuracy: float | None = None
        self.best_round: int | None = None
        # per-example test correctness (encoded): of the last test evaluation, and of the best
        # round's model (from the evaluation at that round, else from its scoring at the end)
        self.last_test: dict[str, Any] | None = None
        self.best_test: dict[str, Any] | None = None
        self._best_path = best_model_path
        self._scratch: tempfile.TemporaryDirectory | None = None
        # where a word before a long evaluation goes (the CLI's tracker prints it)
        self.announce: Callable[[str], None] = lambda message: None

    def evaluate(self, split: HeldOut, rnd: int | None = None) -> dict[str, float]:
        """The task's metrics on a held-out split at the current model, keyed `val_*`/`test_*`;
        an evaluation that takes a while is announced first (`announce`). The test split's
        per-example correctness, as of round `rnd`, is kept (`last_test`)."""
        task = self.forwards.task
        size = task.heldout_size(split)
        if size * self.num_parameters >= ANNOUNCED_EVALUATION:
            self.announce(f"evaluating {size} examples of the {split} split")
        with torch.no_grad(), self.forwards.autocast():
            metrics, correct = task.evaluate_examples(
                self.forwards.model, self.forwards.device, split
            )
        if split == "test" and rnd is not None:
            self.last_test = None if correct is None else predictions.encode(correct, rnd)
        return {f"{PREFIX[split]}_{k}": v for k, v in metrics.items()} | {
            f"{PREFIX[split]}_examples": size
        }

    def evaluate_round(
        self, done: int, summary: Callable[[], dict[str, float]]
    ) -> dict[str, float]:
        """What round `done` scores: the selection split (or the test split when there is none)
        at round 0, every eval_every rounds and at the end, with the algorithm's `summary()`;
        the test split at round 0, at the end and every test_every rounds (never with
        score_test false). Keeps the model of
        the best validation round for the test split to score at the end. Only the main process
        evaluates (the others return nothing)."""
        f = self.cfg.federation
        last = done == f.rounds
        every = f.eval_every and done % f.eval_every == 0
        out: dict[str, float] = {}
        if not self.processes.is_main:  # the other replicas hold the same model
            return out
        if done == 0 or last or every:
            out |= self.evaluate(self.selection or "test", done)
            out |= summary()
        if (
            f.score_test
            and "test_accuracy" not in out
            and (done == 0 or last or (f.test_every and done % f.test_every == 0))
        ):
            out |= self.evaluate("test", done)
        accuracy = out.get("val_accuracy")
        if accuracy is not None and (self.best_accuracy is None or accuracy > self.best_accuracy):
            self.best_accuracy, self.best_round = accuracy, done
            self.best_test = self.last_test if "test_accuracy" in out else None
            if not last:
                self.keep_best()
        return out

    def restore_best(self, history: Sequence[dict[str, Any]], start: int | None) -> int | None:
        """The best validation round of a run's metrics `history`, as `evaluate_round` chose it,
        set here; returns the round whose model a replay from round `start` (None: the starting
        model) must keep, None when the best round's model is already kept (a checkpoint's)."""
        for row in history:
            accuracy = row.get("val_accuracy")
            if accuracy is not None and (
                self.best_accuracy is None or accuracy > self.best_accuracy
            ):
                self.best_accuracy, self.best_round = accuracy, row["round"]
        if self.best_round is None or (start is not None and self.best_round <= start):
            return None
        if self.best_round == 0:
            self.keep_best()  # the starting model, before any round is replayed
        return self.best_round

    def keep_best(self, parameters: Sequence[torch.Tensor] | None = None) -> None:
        """Save the best round's parameters (default: the current model's); on the main process
        only, which alone evaluates."""
        if not self.processes.is_main:
            return
        if self._best_path is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="hiso-best-")
            self._best_path = Path(self._scratch.name) / "best-model.pt"
        tmp = self._best_path.with_suffix(".tmp")
        try:
            with writing("the best round's model", self._best_path):
                tensors = [x.cpu() for x in (self.master if parameters is None else parameters)]
                with tmp.open("wb") as file:  # (a path would turn an OSError into torch's own)
                    torch.save(tensors, file)
                tmp.replace(self._best_path)
        finally:
            tmp.unlink(missing_ok=True)

    def best_parameters(self) -> list[torch.Tensor]:
        assert self._best_path is not None
        return torch.load(self._best_path, map_location="cpu", weights_only=True)

    def state_dict(self, current_round: int | None, parameters: bool = True) -> dict[str, Any]:
        """The best round: its accuracy, number and parameters (None when they are the current
        model's, or when `parameters` is False: `replay` then says that whoever loads the state
        rebuilds them by replaying the run's trajectory)."""
        best = None
        earlier = self.best_round is not None and self.best_round != current_round
        if earlier and parameters:
            best = self.best_parameters()
        return {
            "accuracy": self.best_accuracy,
            "round": self.best_round,
            "parameters": best,
            "replay": earlier and not parameters,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The best round of a state; its model kept unless the state says it is rebuilt by
        replay (then its loader keeps it: Simulation.resume)."""
        self.best_accuracy, self.best_round = state["accuracy"], state["round"]
        if state["parameters"] is not None:
            self.keep_best(state["parameters"])
        elif state.get("replay"):
            return
        elif self.best_round is not None:  # the best round is the checkpoint's own
            self.keep_best()

    def test_at_best(self, final: dict[str, float]) -> dict[str, Any]:
        """The test split scored with the model of the best validation round (`final`: the last
        round's metrics, which already hold it when the last round is the best), and which test
        examples the final and the best round got right (`test_correct`, where the task has
        per-example correctness)."""
        if self.best_round is None:
            return {"best_round": None, "test_accuracy_at_best": None}
        last_test = self.last_test
        if self.best_round == self.cfg.federation.rounds:
            metrics = {k: final[k] for k in ("test_loss", "test_accuracy")}
        else:
            saved = torch.load(self._best_path, map_location=self.forwards.device)
            for w, x in zip(self.work, saved, strict=True):
                w.copy_(x)
            with evaluated_at(self.params, self.work):
                metrics = self.evaluate("test", self.best_round)
            if self.best_test is None:  # not scored at its round: this is its scoring
                self.best_test = self.last_test
        out: dict[str, Any] = {
            "best_round": self.best_round,
            "test_accuracy_at_best": metrics["test_accuracy"],
            "test_loss_at_best": metrics["test_loss"],
        }
        if last_test is not None and self.best_test is not None:
            out["test_correct"] = {"final": last_test, "best": self.best_test}
        return out
