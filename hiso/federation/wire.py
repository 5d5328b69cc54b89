"""The simulated network's meter: encodes each message that crosses, counts its bytes (all clients,
catch-up included) and the papers' per-client conventions, and hands the bytes to listeners."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from hiso.protocol import (
    CONVENTIONS,
    SCALAR_BYTES,
    Message,
    ModelPayload,
    paper_bytes,
    scalar_count,
)

Listener = Callable[[int, str, bytes], None]  # (client, message type name, encoded bytes)


@dataclass
class Wire:
    """The simulated network: encodes each message, counts its bytes and hands the bytes on.

    Per round it counts uplink and downlink bytes over all clients, and per client the totals;
    the papers' per-client figures come from one sampled client's messages of the round (every
    sampled client uploads, and downloads in the round's plan, the same number of values): per
    convention and direction, the last such message counts; a convention that does not count the
    run's algorithm reads 0.
    Listeners (e.g. a client replica) receive (client, message type name, encoded bytes); full
    models are counted by their exact encoded length without being materialised.
    """

    round_uplink: int = 0
    round_downlink: int = 0
    round_scalars: int = 0
    total_uplink: int = 0
    total_downlink: int = 0
    total_scalars: int = 0
    # per direction ("up", "down"): convention -> one client's bytes this round
    round_paper: dict[str, dict[str, int]] = field(default_factory=lambda: {"up": {}, "down": {}})
    total_paper: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONVENTIONS, 0))
    per_client: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    listeners: list[Listener] = field(default_factory=list)

    def _send(self, client: int, direction: str, message: Message) -> bytes:
        if isinstance(message, ModelPayload):
            data, size = b"", message.nbytes
        else:
            data = message.encode()
            size = len(data)
            for listener in self.listeners:
                listener(client, type(message).__name__, data)
        self.round_paper[direction].update(paper_bytes(message, direction))
        if direction == "up":
            self.round_uplink += size
            self.per_client[client][0] += size
        else:
            self.round_downlink += size
            self.per_client[client][1] += size
        self.round_scalars += scalar_count(message)
        return data

    def state_dict(self) -> dict[str, Any]:
        """Every counter (the per-round ones are zero between rounds) and the per-client totals."""
        counters = {f.name: getattr(self, f.name) for f in fields(self)}
        del counters["listeners"]
        counters["per_client"] = {c: list(v) for c, v in self.per_client.items()}
        counters["round_paper"] = {d: dict(v) for d, v in self.round_paper.items()}
        counters["total_paper"] = dict(self.total_paper)
        return counters

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if name != "per_client":
                setattr(self, name, copy.deepcopy(value))
        self.per_client.clear()
        self.per_client.update({c: list(v) for c, v in state["per_client"].items()})

    def downlink(self, client: int, message: Message) -> bytes:
        return self._send(client, "down", message)

    def uplink(self, client: int, message: Message) -> bytes:
        return self._send(client, "up", message)

    def close_round(self) -> dict[str, int]:
        """Fold this round into the totals and return the round's figures."""
        self.total_uplink += self.round_uplink
        self.total_downlink += self.round_downlink
        self.total_scalars += self.round_scalars
        up, down = self.round_paper["up"], self.round_paper["down"]
        paper = {c: up.get(c, 0) + down.get(c, 0) for c in CONVENTIONS}
        for c in CONVENTIONS:
            self.total_paper[c] += paper[c]
        figures = {
            "uplink_bytes": self.round_uplink,
            "downlink_bytes": self.round_downlink,
            "cumulative_uplink_bytes": self.total_uplink,
            "cumulative_downlink_bytes": self.total_downlink,
            "cumulative_bytes": self.total_uplink + self.total_downlink,
            "cumulative_scalar_bytes_all_clients": SCALAR_BYTES * self.total_scalars,
            **{f"paper_bytes_{c}": paper[c] for c in CONVENTIONS},
            **{f"cumulative_paper_bytes_{c}": self.total_paper[c] for c in CONVENTIONS},
        }
        self.round_uplink = self.round_downlink = self.round_scalars = 0
        self.round_paper = {"up": {}, "down": {}}
        return figures
