"""Options that need a server fail in seconds, before anything loads, when it cannot be reached:
logger.wandb.mode=online and hub.online=true, against real local sockets (a closed port, one
that listens, one that never answers); no test leaves this machine."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hiso.network import check_hub, check_wandb_server, fall_back_offline, unreachable
from hiso.schema import ConfigError, LoggerConfig, WandbConfig

from cli_inputs import DIGITS, run_main

pytestmark = pytest.mark.usefixtures("no_model")
ONLINE = LoggerConfig(wandb=WandbConfig(mode="online"))


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_listening_server_is_reachable(
    listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert unreachable(f"http://127.0.0.1:{listening_port}") is None
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{listening_port}")
    monkeypatch.setenv("HF_ENDPOINT", f"http://localhost:{listening_port}")
    check_wandb_server(ONLINE)
    check_hub()


def test_a_closed_port_and_an_unknown_name_fail_at_once(closed_port: int) -> None:
    start = time.monotonic()
    assert "refused or failed" in str(unreachable(f"http://127.0.0.1:{closed_port}"))
    assert "was not resolved" in str(unreachable("https://no-such-host.invalid"))
    assert time.monotonic() - start < 5


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local server whose accept queue is full: a connection's SYN gets no answer, as from
    an unroutable address (which this machine's network may answer for)."""
    with socket.socket() as server, socket.socket() as first:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        first.connect(("127.0.0.1", port))  # fills the queue; nothing is accepted
        yield port


def test_a_server_that_does_not_answer_fails_within_the_time_given(silent_port: int) -> None:
    start = time.monotonic()
    why = unreachable(f"http://127.0.0.1:{silent_port}", seconds=0.5)
    assert why == f"127.0.0.1:{silent_port} did not answer within 0.5 s"
    assert 0.5 <= time.monotonic() - start < 2


def test_offline_wandb_needs_no_server(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port}")
    check_wandb_server(LoggerConfig(wandb=WandbConfig(mode="offline")))
    with pytest.raises(ConfigError, match=r"logger\.wandb\.mode='online' .* offline or disabled"):
        check_wandb_server(ONLINE)


@pytest.mark.parametrize(
    ("args", "variable", "expected"),
    [
        (("logger=default", "logger.wandb.mode=online"), "WANDB_BASE_URL", "logger.wandb.mode="),
        (("hub.online=true",), "HF_ENDPOINT", "hub.online=True is not allowed: false here"),
    ],
)
def test_the_command_stops_in_seconds_with_one_message(
    args: tuple[str, ...],
    variable: str,
    expected: str,
    closed_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", "a-key")  # the key is there: the server is not
    monkeypatch.setenv(variable, f"http://127.0.0.1:{closed_port}")
    start = time.monotonic()
    code = run_main([*DIGITS, *args, f"hydra.run.dir={tmp_path}/run"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 15, err
    assert err.count("hiso-run:") == 1 and "Traceback" not in err
    assert expected in err and f"127.0.0.1:{closed_port}" in err
    assert not (tmp_path / "run").exists()


def test_an_online_run_falls_back_to_offline_when_the_config_says_so(
    closed_port: int, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    falling = LoggerConfig(wandb=WandbConfig(mode="online", offline_fallback=True))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{listening_port}")
    assert fall_back_offline(falling) is None and falling.wandb.mode == "online"
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port}")
    check_wandb_server(falling)  # not refused: the run falls back as it starts
    notice = fall_back_offline(falling)
    assert falling.wandb.mode == "offline"
    assert notice is not None and f"127.0.0.1:{closed_port}" in notice and "logs offline" in notice
    refusing = LoggerConfig(wandb=WandbConfig(mode="online"))
    assert fall_back_offline(refusing) is None and refusing.wandb.mode == "online"
