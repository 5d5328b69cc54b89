"""The Hugging Face hub's offline switches: hiso-run reads only local files and caches unless a
run asks for the network (`hub.online=true`)."""

from __future__ import annotations

import os

# read once, when huggingface_hub / datasets are imported
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
ONLINE_HINT = "hub.online=true"


def set_hub_mode(online: bool) -> None:
    """Turn both offline switches on unless `online`; a switch set in the environment (0 or 1)
    is kept as the user set it. Call before transformers, datasets or huggingface_hub load."""
    if online:
        return
    for name in OFFLINE_SWITCHES:
        os.environ.setdefault(name, "1")


def hub_offline() -> bool:
    """Whether huggingface_hub runs offline in this process (as it read the switch)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
