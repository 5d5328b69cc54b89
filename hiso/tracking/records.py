"""Metric records: JSON-safe values, reading metrics.jsonl back, byte units and the run summary."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """A copy with non-finite floats (NaN, inf) replaced by None: strict JSON, key kept."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in record.items()
    }


def read_jsonl(path: Path) -> list[dict]:
    """Read one JSON object per line; a torn last line (a run killed mid-write) is dropped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise
    return records


def human_duration(seconds: float | None) -> str:
    """Format a duration: 42.0 s, 7 min, 2h 05m ("-" for None)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def human_bytes(count: float) -> str:
    """Format a byte count with binary units: 512 B, 1.5 KiB, 20 MiB."""
    value = float(count)
    for unit in _BYTE_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:.4g} {unit}"
        value /= 1024
    return f"{value:.4g} {_BYTE_UNITS[-1]}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _last(history: list[dict], key: str) -> float | int | None:
    return next((r[key] for r in reversed(history) if _finite(r.get(key))), None)


def _scored(history: list[dict], key: str) -> list[dict]:
    return [r for r in history if _finite(r.get(key))]


def summarize(history: list[dict], target_accuracy: float | None) -> dict:
    """Summarise a run's per-round records (accuracy, rounds to target, time and bytes).

    Selection uses the validation split: `best_val_accuracy` and `best_round` are its maximum
    (the first round reaching it), `rounds_to_target` the first round whose validation accuracy
    reaches the target (the test split stands in only when the run has no validation split, and
    `target_split` says so). Test figures are reported, never selected on. Missing or non-finite
    values are skipped; a quantity with no value at all is None.
    """
    vals = _scored(history, "val_accuracy")
    tests = _scored(history, "test_accuracy")
    last_round = history[-1]["round"] if history else 0
    best = max(vals, key=lambda r: r["val_accuracy"], default=None)
    target_key, target_rows = ("val_accuracy", vals) if vals else ("test_accuracy", tests)
    reached = (
        None
        if target_accuracy is None
        else next((r["round"] for r in target_rows if r[target_key] >= target_accuracy), None)
    )
    round_times = [
        r["round_time"] for r in history if r["round"] >= 1 and _finite(r.get("round_time"))
    ]

    def at(rows: list[dict], key: str, rnd: int) -> float | None:
        return next((r[key] for r in rows if r["round"] == rnd), None)

    return {
        "selection_split": "validation" if vals else None,
        "initial_val_accuracy": at(vals, "val_accuracy", 0),
        "initial_test_accuracy": at(tests, "test_accuracy", 0),
        "final_val_accuracy": at(vals, "val_accuracy", last_round),
        "final_test_accuracy": at(tests, "test_accuracy", last_round),
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "best_round": best["round"] if best else None,
        "rounds_to_target": reached,
        "target_accuracy": target_accuracy,
        "target_split": None if target_accuracy is None else target_key.removesuffix("_accuracy"),
        "seconds_per_round": statistics.median(round_times) if round_times else None,
        "total_seconds": _last(history, "wall_time"),
        "total_bytes": _last(history, "cumulative_bytes"),
        "total_uplink_bytes": _last(history, "cumulative_uplink_bytes"),
        "total_downlink_bytes": _last(history, "cumulative_downlink_bytes"),
        "paper_bytes_hiso": _last(history, "cumulative_paper_bytes_hiso"),
        "paper_bytes_decomfl": _last(history, "cumulative_paper_bytes_decomfl"),
        "rounds": last_round,
        "final_test_loss": at(tests, "test_loss", last_round),
        "val_examples": _last(history, "val_examples"),
        "test_examples": _last(history, "test_examples"),
        "final_train_loss": _last(history, "train_loss"),
    }
