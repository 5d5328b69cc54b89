"""Metrics sinks for a run (console progress, metrics.jsonl, wandb), its summary and its plots:
imported from their modules, so that a run loads only what it uses (wandb, matplotlib)."""
