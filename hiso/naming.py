"""The name a run of a local checkpoint goes by (`model.path=DIR`): in its run directory, its
summary, its wandb run and the choice of a dataset's per-model prompt.

The built-in model groups set `name: ${checkpoint_name:${.path},GROUP}`: the group's own name
without a path, the checkpoint's name with one, and whatever `model.name=...` says when given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# directory names that say nothing about the model: a commit hash (the Hugging Face cache's
# snapshots/<hash>), a trainer's checkpoint-N, and the usual words for "the weights are here"
GENERIC = re.compile(
    r"[0-9a-f]{7,40}|checkpoint(-\d+)?|checkpoints|ckpt|model|models|weights|final|best|last|"
    r"latest|output|outputs|hf|snapshot|snapshots|main|merged|export|\.?",
    re.IGNORECASE,
)
# one Hugging Face hub cache entry: models--<org>--<name>
HUB_CACHE_ENTRY = re.compile(r"models--(?:[^/]+--)?(?P<name>[^/]+)")


def checkpoint_name(path: str | None, default: str) -> str:
    """`default` without a path; else the checkpoint directory's name, or when that is generic
    (a hash, `checkpoint-500`, `model`, ...) the hub repository it was cached from
    (`models--org--NAME`), the `_name_or_path` of its config.json, or its `model_type`, in that
    order; characters other than letters, digits, `.`, `_` and `-` become `-`."""
    if not path:
        return default
    folder = Path(path).expanduser().resolve()
    config = _config(folder)
    candidates = (
        folder.name,
        *(m["name"] for p in folder.parents if (m := HUB_CACHE_ENTRY.fullmatch(p.name))),
        Path(str(config.get("_name_or_path", ""))).name,
        str(config.get("model_type", "")),
    )
    chosen = next((c for c in candidates if c and not GENERIC.fullmatch(c)), folder.name)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", chosen) or default


def _config(folder: Path) -> dict:
    """The checkpoint's config.json, or {} when it is missing or unreadable (the model loader
    reports that, naming the path)."""
    try:
        loaded = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
