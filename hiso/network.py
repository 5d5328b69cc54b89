"""Whether a server a run needs is there, asked before anything loads: the wandb server for
`logger.wandb.mode=online`, the Hugging Face hub for `hub.online=true`. One TCP connection to the
server's host and port, name lookup included, within REACH_SECONDS each, instead of the clients'
own retries (wandb gave up after about 100 s, with the model loaded and no summary)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from hiso.schema import ConfigError

REACH_SECONDS = 5.0
WANDB_URL = "https://api.wandb.ai"
HUB_URL = "https://huggingface.co"


def unreachable(url: str, seconds: float = REACH_SECONDS) -> str | None:
    """Why a TCP connection to `url`'s host and port fails (None when it opens): the name
    lookup and the connection are given `seconds` each."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found: list[Any] = []

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            found.append(err)

    lookup = threading.Thread(target=look_up, daemon=True)  # getaddrinfo takes no timeout
    lookup.start()
    lookup.join(seconds)
    if not found:
        return f"the name {host} was not resolved within {seconds:g} s"
    if isinstance(found[0], OSError):
        return f"the name {host} was not resolved ({found[0]})"
    family, kind, protocol, _, address = found[0][0]
    try:
        with socket.socket(family, kind, protocol) as connection:
            connection.settimeout(seconds)
            connection.connect(address)
    except TimeoutError:
        return f"{host}:{port} did not answer within {seconds:g} s"
    except OSError as err:
        return f"{host}:{port} refused or failed the connection ({err.strerror or err})"
    return None


def check_wandb_server(cfg: Any, seconds: float = REACH_SECONDS) -> None:
    """logger.wandb.mode=online needs its server ($WANDB_BASE_URL, else wandb's), unless
    logger.wandb.offline_fallback lets the run fall back to offline as it starts."""
    if cfg.wandb.mode != "online" or getattr(cfg.wandb, "offline_fallback", False):
        return
    url = os.environ.get("WANDB_BASE_URL", WANDB_URL)
    why = unreachable(url, seconds)
    if why is not None:
        raise ConfigError(
            "logger.wandb.mode",
            cfg.wandb.mode,
            f"offline or disabled here: the wandb server {url} cannot be reached ({why}); an "
            "offline run is uploaded later with `wandb sync RUN_DIR/wandb/offline-run-*` "
            "(logger.wandb.offline_fallback=true falls back to it by itself)",
        )


def fall_back_offline(cfg: Any, seconds: float = REACH_SECONDS) -> str | None:
    """With logger.wandb.offline_fallback, an online run whose server is out of reach logs
    offline: `cfg.wandb.mode` becomes offline and the notice that says so is returned (None when
    nothing changed)."""
    w = cfg.wandb
    if w.mode != "online" or not getattr(w, "offline_fallback", False):
        return None
    url = os.environ.get("WANDB_BASE_URL", WANDB_URL)
    why = unreachable(url, seconds)
    if why is None:
        return None
    w.mode = "offline"
    return (
        f"hiso-run: the wandb server {url} cannot be reached ({why}); this run logs offline "
        "(logger.wandb.offline_fallback): upload it later with "
        "`wandb sync RUN_DIR/wandb/offline-run-*`"
    )


def check_hub(seconds: float = REACH_SECONDS) -> None:
    """hub.online=true needs the Hugging Face hub ($HF_ENDPOINT, else huggingface.co)."""
    url = os.environ.get("HF_ENDPOINT", HUB_URL)
    why = unreachable(url, seconds)
    if why is not None:
        raise ConfigError(
            "hub.online",
            True,
            f"false here: the Hugging Face hub {url} cannot be reached ({why}); offline, "
            "hiso-run reads local directories and the Hugging Face cache",
        )
