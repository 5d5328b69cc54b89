"""Where a run writes its caches: hiso-run's own (de-quantised GGUF checkpoints) under
$HISO_CACHE or ~/.cache/hiso-run, and with $HISO_CACHE set every other cache too (Hugging Face
hub and datasets, matplotlib, wandb), so that nothing is written under the home directory."""

from __future__ import annotations

import os
from pathlib import Path

VARIABLE = "HISO_CACHE"
# the caches of the libraries a run uses, by the variable that moves each, and where it goes
# below $HISO_CACHE; HF_HOME holds the hub cache (hub/), the datasets cache (datasets/), remote
# code (modules/) and the xet chunk cache (xet/)
REDIRECTED = {
    "HF_HOME": "huggingface",
    "MPLCONFIGDIR": "matplotlib",
    "WANDB_CACHE_DIR": "wandb/cache",
    "WANDB_CONFIG_DIR": "wandb/config",
    "WANDB_DATA_DIR": "wandb/data",
}


def cache_root() -> Path:
    """hiso-run's own cache: $HISO_CACHE, else ~/.cache/hiso-run."""
    return Path(os.environ.get(VARIABLE) or Path.home() / ".cache" / "hiso-run")


def redirect_caches() -> None:
    """With $HISO_CACHE set, point each library's cache below it (a variable already set in the
    environment is kept as the user set it); a Hugging Face login saved in the home cache stays
    readable. Call before huggingface_hub, datasets, matplotlib or wandb load."""
    root = os.environ.get(VARIABLE)
    if not root:
        return
    if "HF_HOME" not in os.environ:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        home_token = Path(xdg) / "huggingface" / "token"
        os.environ.setdefault("HF_TOKEN_PATH", str(home_token))
    for variable, folder in REDIRECTED.items():
        os.environ.setdefault(variable, str(Path(root).expanduser().resolve() / folder))
