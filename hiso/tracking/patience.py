"""Early stopping on the selection split: a run stops when `federation.patience` evaluations in a
row have not raised the best validation accuracy."""

from __future__ import annotations

from collections.abc import Iterable


class Patience:
    """Counts the evaluations since the best validation accuracy; `exhausted` once `limit` of
    them in a row have not beaten it (never with limit None). Fed every logged record: only those
    holding `val_accuracy` count. A resumed run replays its history through `observe`."""

    def __init__(self, limit: int | None, history: Iterable[dict] = ()) -> None:
        self.limit = limit
        self.best: float | None = None
        self.stale = 0
        for record in history:
            self.observe(record)

    def observe(self, record: dict) -> None:
        accuracy = record.get("val_accuracy")
        if accuracy is None:
            return
        if self.best is None or accuracy > self.best:
            self.best, self.stale = accuracy, 0
        else:
            self.stale += 1

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.stale >= self.limit
