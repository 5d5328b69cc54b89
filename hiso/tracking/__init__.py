"""Metrics sinks for a run (console progress, metrics.jsonl, wandb), its summary and its plots."""

from hiso.tracking.plots import plot_bands, plot_run, plot_runs
from hiso.tracking.records import read_jsonl, summarize
from hiso.tracking.tracker import Tracker
from hiso.tracking.wandb_reader import read_wandb_offline_history

__all__ = [
    "Tracker",
    "plot_bands",
    "plot_run",
    "plot_runs",
    "read_jsonl",
    "read_wandb_offline_history",
    "summarize",
]
