"""A loopback webhook receiver for alert tests: it keeps each JSON body it is sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver(BaseHTTPRequestHandler):
    """A loopback webhook: keeps each JSON body it is sent."""

    bodies: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers["content-length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[Any]]]:
    """``(url, bodies)``: a webhook on a free loopback port; its path stands for a secret."""
    bodies: list[Any] = []
    handler = type("Handler", (Receiver,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
