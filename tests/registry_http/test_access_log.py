"""The registry server's access log never holds a credential sent in a query string."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from shipyard.web import QueryRedactor
from tests.serving.conftest import serve_process

SECRET = "shy_1_" + "s3cr3t" * 6


def test_the_filter_cuts_the_query_string_and_keeps_the_rest() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5", "GET", f"/api/v1/projects?token={SECRET}&x=1", "1.1", 401)
    assert QueryRedactor().filter(record) is True
    line = record.getMessage()
    assert SECRET not in line
    assert '"GET /api/v1/projects?… HTTP/1.1" 401' in line


def test_a_token_in_the_query_string_stays_out_of_the_servers_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    environment = {"SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_DATABASE_URL": ""}
    with (
        log.open("w") as output,
        serve_process([], environment, subcommand="server", output=output) as (url, _),
    ):
        answered = httpx.get(f"{url}/api/v1/projects?token={SECRET}", timeout=10)
        assert answered.status_code == 401
        httpx.get(f"{url}/health", timeout=10)  # a second line: the first one is written
    text = log.read_text()
    assert "/api/v1/projects?…" in text
    assert SECRET not in text
