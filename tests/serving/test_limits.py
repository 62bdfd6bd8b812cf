"""Slow clients: serve closes a connection whose request head or body does not arrive in time.

Each test opens a raw socket to a server with one-second limits and waits for the server
to close it (recv returning b''), bounded generously; no test measures how long it took.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import UsageError
from shipyard.serving import ModelRunner, ServeOptions, ServingApp, bundle_table
from shipyard.serving._protocol import ReadLimits

from .conftest import guarded_server, serve_process

LIMITS = ReadLimits(header_seconds=1.0, body_seconds=1.0)
CLOSE_BOUND = 30.0  # seconds to wait for the server to close: only turns a hang into a failure
INFER = b"POST /v2/models/frame_total/infer HTTP/1.1\r\nHost: t\r\n"


@pytest.fixture(scope="module")
def slow_server(toy_runners: dict[str, ModelRunner]) -> Iterator[tuple[str, int]]:
    """The frame model behind serve's protocol with one-second limits: (host, port)."""
    app = ServingApp(bundle_table([toy_runners["frame"]]))
    with guarded_server(app, LIMITS, keep_alive_timeout=1) as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def _connect(address: tuple[str, int], first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address, timeout=CLOSE_BOUND)
    if first:
        sock.sendall(first)
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails past the bound)."""
    received = b""
    with sock:
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            except TimeoutError:
                pytest.fail(f"the server kept the connection open (got {received[:200]!r})")
            if not chunk:
                return received
            received += chunk


def test_a_connection_that_sends_nothing_is_closed(slow_server: tuple[str, int]) -> None:
    assert _until_closed(_connect(slow_server)) == b""


def test_a_head_that_stops_midway_gets_408_and_the_connection_closes(
    slow_server: tuple[str, int],
) -> None:
    answer = _until_closed(_connect(slow_server, b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow"))
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error":"RequestTimeout"' in answer and b"request head" in answer


def test_a_body_that_stops_midway_gets_408_and_the_connection_closes(
    slow_server: tuple[str, int],
) -> None:
    head = INFER + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    answer = _until_closed(_connect(slow_server, head + b'{"inputs": ['))
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request body did not arrive within 1 s" in answer


def test_a_body_left_unread_by_an_early_answer_does_not_hold_the_connection(
    slow_server: tuple[str, int],
) -> None:
    head = b"POST /v2/models/nope/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n{"
    answer = _until_closed(_connect(slow_server, head))
    assert answer.startswith(b"HTTP/1.1 404 ")  # answered before the body, then closed


def test_many_slow_connections_are_all_closed(slow_server: tuple[str, int]) -> None:
    socks = [_connect(slow_server, b"GET /health HTTP/1.1\r\n") for _ in range(50)]
    answers = [_until_closed(sock) for sock in socks]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)


def test_a_head_over_the_limit_is_431(slow_server: tuple[str, int]) -> None:
    big = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    answer = _until_closed(_connect(slow_server, big))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"error":"HeadersTooLarge"' in answer


def test_requests_sent_in_time_share_a_kept_alive_connection(
    slow_server: tuple[str, int],
) -> None:
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"
    answer = _until_closed(_connect(slow_server, request * 2))  # closed after keep-alive
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert b"408" not in answer


def test_an_upgrade_to_websocket_is_served_as_plain_http(slow_server: tuple[str, int]) -> None:
    upgrade = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n" + upgrade
    sock = _connect(slow_server, request + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    answer = _until_closed(sock)  # answered, then closed by the keep-alive timeout
    assert answer.startswith(b"HTTP/1.1 200 ") and b'{"live":true}' in answer


def test_shipyard_serve_takes_its_limits_from_its_flags(
    toy_bundles: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--bundle", str(toy_bundles["frame"]), "--header-timeout", "1"]
    args += ["--capture-folder", str(tmp_path)]
    with serve_process(args) as (base, _):
        host, port = base.removeprefix("http://").split(":")
        answer = _until_closed(_connect((host, int(port)), b"GET /health HTTP/1.1\r\n"))
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"within 1 s" in answer


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        ({"header_timeout": 0}, "--header-timeout"),
        ({"body_timeout": -1}, "--body-timeout"),
        ({"keep_alive_timeout": 0}, "--keep-alive-timeout"),
        ({"max_connections": 0}, "--max-connections"),
        ({"max_header_bytes": 10}, "--max-header-bytes"),
    ],
)
def test_serve_refuses_limits_that_would_refuse_everything(change: dict, flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        ServeOptions(bundle="b.tar.gz", **change).check()
