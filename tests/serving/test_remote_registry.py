"""``shipyard serve --project P --env E`` following a registry server (SHIPYARD_URL), as a team
runs it: the key is made through the server with ``shipyard apikey``, a promotion made
through the server is picked up, a revoked key is refused; each on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.errors import UsageError
from shipyard.registry import Registry
from shipyard.registry_http import RegistryClient
from shipyard.serving import ServeOptions

from ._hold import wait_until
from .conftest import STOP_TIMEOUT, free_socket, predict_path, serve_process

MODEL = "tumour_triage"
PRODUCTION = predict_path(MODEL, "demo", "production")
# What the serve and CLI processes get instead of a database: were they to open the
# embedded registry, they would fail on this address instead of passing by accident.
NO_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/not-the-registry"


@contextmanager
def registry_server(environment: dict[str, str], log: Path) -> Iterator[str]:
    """``shipyard server`` in a subprocess on a free loopback port; yields its URL.

    Its access log goes to ``log``: a pipe nobody reads would fill and stop the server.
    """
    with (
        log.open("w") as output,
        serve_process([], environment, subcommand="server", output=output) as (url, _),
    ):
        yield url


def shipyard(environment: dict[str, str], *args: str) -> Any:
    """The parsed ``--json`` output of ``shipyard ARGS --json`` run as a process."""
    command = [str(Path(sys.executable).with_name("shipyard")), *args, "--json"]
    done = subprocess.run(
        command,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def served_version(base: str, key: str, body: dict[str, Any]) -> str:
    """The version that answers a prediction with ``key`` (its status code when refused)."""
    response = httpx.post(base + PRODUCTION, json=body, headers={"X-API-Key": key}, timeout=30)
    if response.status_code != 200:
        return str(response.status_code)
    return response.headers["x-shipyard-version"]


def test_serve_follows_a_registry_server_through_a_promotion(
    demo: Registry, database_url: str, tmp_path: Path, demo_reference: dict[str, Any]
) -> None:
    demo.add_component("demo", "production", MODEL, "v1")
    demo.add_component("demo", "uat", MODEL, "v2")
    server_environment = {
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),  # the demo fixture's store
        "SHIPYARD_HOME": str(tmp_path / "server-home"),
    }
    body = {"tumours": {k: v[:1] for k, v in demo_reference["tumours"].items()}}
    with registry_server(server_environment, tmp_path / "server.log") as url:
        client_environment = {
            "SHIPYARD_URL": url,
            "SHIPYARD_TOKEN": demo.create_token("ci", "deployer")[1],
            "SHIPYARD_DATABASE_URL": NO_DATABASE,
            "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "no-store"),
            "SHIPYARD_HOME": str(tmp_path / "client-home"),
        }
        made = shipyard(
            client_environment, "apikey", "create", "--project", "demo", "--env", "production"
        )
        key = made["key"]
        assert made["created_by"] == "ci" and key.startswith(f"sya_{made['id']}_")
        serve_environment = {
            **client_environment,
            "SHIPYARD_TOKEN": demo.create_token("serving", "deployer")[1],
        }
        args = ["--project", "demo", "--env", "production", "--poll-ms", "100"]
        with serve_process(args, serve_environment) as (base, process):
            assert served_version(base, key, body) == "v1"
            assert served_version(base, "sya_1_nope", body) == "401"
            assert httpx.get(base + "/health").json()["models"] == {MODEL: ["v1"]}

            with RegistryClient(url, client_environment["SHIPYARD_TOKEN"]) as registry:
                promoted = registry.promote("demo", "uat")  # production: v1 -> v2
            assert promoted["environment"] == "production" and promoted["actor"] == "ci"
            wait_until(
                lambda: httpx.get(base + "/health").json()["models"] == {MODEL: ["v2"]},
                "the serve process did not pick up the promotion",
            )
            health = httpx.get(base + "/health").json()
            assert health["revision"] == promoted["number"]
            assert served_version(base, key, body) == "v2"

            # Revoke the first key once a second one exists: with no live key at all the
            # routes would be open, so the second one keeps them locked.
            other = shipyard(
                client_environment,
                *("apikey", "create", "--project", "demo", "--env", "production", "--name", "b"),
            )
            wait_until(
                lambda: served_version(base, other["key"], body) == "v2",
                "the serve process did not take up the new key",
            )
            shipyard(
                client_environment,
                *("apikey", "revoke", str(made["id"]), "--project", "demo", "--env", "production"),
            )
            wait_until(
                lambda: served_version(base, key, body) == "401",
                "the serve process still accepts a revoked key",
            )
            assert served_version(base, other["key"], body) == "v2"
            process.send_signal(signal.SIGTERM)
            process.wait(STOP_TIMEOUT)
            output = process.stdout.read()  # type: ignore[union-attr]
    assert f"demo/production of {url}" in output
    for secret in (key, key.split("_", 2)[2], serve_environment["SHIPYARD_TOKEN"]):
        assert secret not in output
    events = demo.audit_list(object_prefix="project/demo/environment")
    assert [(e.action, e.actor) for e in events][:4] == [
        ("apikey.revoke", "ci"),
        ("apikey.create", "ci"),
        ("environment.promote", "ci"),
        ("apikey.create", "ci"),
    ]


def test_serve_refuses_a_token_below_deployer_in_one_line(
    demo: Registry, database_url: str, tmp_path: Path
) -> None:
    demo.add_component("demo", "production", MODEL, "v1")
    server_environment = {
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "SHIPYARD_HOME": str(tmp_path / "server-home"),
    }
    with registry_server(server_environment, tmp_path / "server.log") as url:
        environment = {
            **os.environ,
            "SHIPYARD_URL": url,
            "SHIPYARD_TOKEN": demo.create_token("reader", "viewer")[1],
            "SHIPYARD_DATABASE_URL": NO_DATABASE,
            "SHIPYARD_HOME": str(tmp_path / "client-home"),
        }
        sock = free_socket()
        port = str(sock.getsockname()[1])
        sock.close()
        command = [str(Path(sys.executable).with_name("shipyard")), "serve", "--port", port]
        done = subprocess.run(
            [*command, "--project", "demo", "--env", "production"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    assert "token 'reader' has role viewer; api_key_digests needs deployer" in done.stderr


def test_the_registry_url_travels_to_worker_processes_and_not_with_a_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = ServeOptions(project="demo", environment="production", registry_url="http://r:1")
    monkeypatch.setenv("SHIPYARD_SERVE_OPTIONS", options.check().to_env())
    assert ServeOptions.from_env() == options
    with pytest.raises(UsageError, match="drop registry_url"):
        ServeOptions(bundle="m.tar.gz", registry_url="http://r:1").check()
