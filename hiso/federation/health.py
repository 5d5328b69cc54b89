"""A run's health, round by round: rounds whose loss or scalars were NaN or infinite (stopped on
at once under nan_policy=stop, skipped and counted under nan_policy=skip, up to
federation.max_skipped_rounds in a row) and rounds whose scalars were all zero (the model did
not move by them: one warning, on the console and in the summary). Its counts are part of the
run's state, so a resumed run stops and warns where the uninterrupted one does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hiso.schema import RunConfig


class NonFiniteLossError(RuntimeError):
    """A round's loss or scalar was NaN/inf (nan_policy=stop), or too many rounds in a row were
    (nan_policy=skip)."""


class RoundHealth:
    """The counts for one run. `note` puts the zero-scalar warning on the console."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        # rounds skipped under nan_policy=skip: in all, and in a row up to the last round
        self.skipped_rounds = self.skipped_in_a_row = 0
        # rounds in a row whose scalars were all zero, and the one warning they gave
        self.zero_in_a_row = 0
        self.warnings: list[str] = []
        self.note: Callable[[str], None] = lambda message: None

    def check_loss(self, rnd: int, loss: float) -> None:
        """Under nan_policy=stop, a non-finite loss of round `rnd` (0-based) ends the run."""
        if not np.isfinite(loss) and self.cfg.nan_policy == "stop":
            raise NonFiniteLossError(
                f"round {rnd + 1}: a client's loss or scalar is NaN or infinite "
                "(nan_policy=stop; set nan_policy=skip to drop such rounds, or lower optim.lr)"
            )

    def after_round(self, done: int, loss: float, zero_scalars: bool) -> dict[str, int]:
        """Count round `done` (1-based); {"skipped": 1} for its record when it was skipped."""
        self._watch_zero_scalars(done, zero_scalars)
        if np.isfinite(loss):
            self.skipped_in_a_row = 0
            return {}
        self.skipped_rounds += 1
        self.skipped_in_a_row += 1
        return {"skipped": 1}

    def check_skips(self, done: int) -> None:
        """End the run when federation.max_skipped_rounds rounds in a row up to `done` were
        skipped: the model has not moved since."""
        limit = self.cfg.federation.max_skipped_rounds
        if self.skipped_in_a_row < limit:
            return
        kept = done - self.skipped_in_a_row
        raise NonFiniteLossError(
            f"rounds {kept + 1}-{done}: {self.skipped_in_a_row} rounds in a row had a NaN or "
            f"infinite loss or scalar and were skipped (nan_policy=skip, "
            f"federation.max_skipped_rounds={limit}), so the model is still that of round "
            f"{kept}; lower optim.lr or change algo.mu"
        )

    def _watch_zero_scalars(self, done: int, zero_scalars: bool) -> None:
        """Warn once when the scalars were all zero for an evaluation interval of rounds (all
        the rounds with federation.eval_every=0)."""
        f = self.cfg.federation
        self.zero_in_a_row = self.zero_in_a_row + 1 if zero_scalars else 0
        if self.warnings or self.zero_in_a_row < (f.eval_every or f.rounds):
            return
        self.warnings.append(
            f"warning: every scalar of rounds {done - self.zero_in_a_row + 1}-{done} was zero: "
            f"the losses at x + mu z equalled those at x, so the model did not move by them; "
            f"raise algo.mu (now {self.cfg.algo.mu}) or check the model's dtype and loss"
        )
        self.note(self.warnings[-1])

    def summary(self) -> dict[str, Any]:
        return {"skipped_rounds": self.skipped_rounds} | (
            {"warnings": self.warnings} if self.warnings else {}
        )

    # state (two keys of the simulation's state, as checkpoints have always held them) -------
    def state_dict(self) -> dict[str, Any]:
        return {
            "skipped": [self.skipped_rounds, self.skipped_in_a_row],
            "zero_scalars": {"in_a_row": self.zero_in_a_row, "warnings": list(self.warnings)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped_rounds, self.skipped_in_a_row = state["skipped"]
        zero = state.get("zero_scalars", {})  # absent from checkpoints written before it
        self.zero_in_a_row, self.warnings = zero.get("in_a_row", 0), list(zero.get("warnings", []))

    def restore_skips(self, rows: Sequence[dict[str, Any]]) -> None:
        """The skipped-round counts from a run's metrics (a replay)."""
        skipped = [bool(r.get("skipped")) for r in rows]
        self.skipped_rounds = sum(skipped)
        self.skipped_in_a_row = ([*skipped[::-1], False]).index(False)
