"""The smoke test of an environment: serve it as ``shipyard serve`` does, then predict.

``smoke`` starts ``shipyard serve --project P --env E`` on a free loopback port (it follows
the same registry: $SHIPYARD_URL with $SHIPYARD_TOKEN, or the embedded one), waits until
it serves the environment's current revision, makes a short-lived API key, and then
either sends each model its bundle's example input (the one /openapi.json shows) and
checks the answer came from the version the environment holds, or runs a command of the
repository's own with $SHIPYARD_SMOKE_URL and $SHIPYARD_SMOKE_API_KEY set. The key is
revoked and the server stopped however it ends; the key is never printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import ShipyardError
from ..registry import to_json

_SERVE = "from shipyard.cli import main; main()"
_KEY_NAME = "ci-smoke"


@dataclass(frozen=True)
class SmokeOptions:
    """What to smoke-test and how long to wait (seconds) for the server to serve it."""

    project: str
    environment: str
    command: str | None = None
    timeout: float = 180.0


def smoke(backend: Any, options: SmokeOptions) -> dict[str, Any]:
    """Serve the environment and check it answers; returns what was checked.

    The result holds ``project``, ``environment``, ``revision``, ``url`` and either
    ``models`` (per model: the version that answered, status, milliseconds) or
    ``command`` (the command and its exit code). Raises ShipyardError saying what failed,
    with the end of the server's log when the server is at fault.
    """
    p, e = options.project, options.environment
    status = to_json(backend.status(p, e))
    models = [c for c in status["components"] if c["kind"] == "model"]
    if not status["components"]:
        raise ShipyardError(f"{p}/{e} holds no component: nothing to smoke-test")
    if not models and not options.command:
        # An app alone (a blank app's environment) is smoke-tested by its own command.
        raise ShipyardError(
            f"{p}/{e} holds no model: nothing to send an example to (give --command with "
            "a smoke test of your own)"
        )
    record, key = backend.create_api_key(p, e, _KEY_NAME)
    deadline = time.monotonic() + options.timeout
    try:
        with _served(p, e) as (url, server):
            _wait_until_serving(url, server, status["revision"], deadline)
            result: dict[str, Any] = {
                "project": p,
                "environment": e,
                "revision": status["revision"],
                "url": url,
            }
            if options.command:
                result["command"] = _run(options, url, key, server, deadline)
            else:
                result["models"] = [
                    _predict(url, p, e, model, key, server, deadline) for model in models
                ]
            return result
    finally:
        backend.revoke_api_key(p, e, to_json(record)["id"])


class _Server:
    """A running ``shipyard serve`` and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in text) or "  | (nothing)"

    def check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            raise ShipyardError(
                f"shipyard serve exited ({self.process.returncode}) before {what}; "
                f"its log ends:\n{self.tail()}"
            )


@contextmanager
def _served(project: str, env: str) -> Iterator[tuple[str, _Server]]:
    port = _free_port()
    command = [sys.executable, "-c", _SERVE, "serve", "--project", project, "--env", env]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--poll-ms", "500"]
    with tempfile.TemporaryDirectory(prefix="shipyard-smoke-") as folder:
        log = Path(folder) / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            yield f"http://127.0.0.1:{port}", _Server(process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(url: str, server: _Server, revision: int, deadline: float) -> None:
    """Until /health names ``revision`` (ShipyardError when the deadline passes first)."""
    seen = "no answer"
    while True:
        server.check_alive("serving")
        try:
            answer = httpx.get(f"{url}/health", timeout=5)
            body = answer.json() if answer.status_code == 200 else None
            if isinstance(body, dict) and body.get("revision") == revision:
                return
            seen = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except (httpx.TransportError, ValueError) as exc:
            seen = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            raise ShipyardError(
                f"shipyard serve did not serve revision {revision} in time (last /health: "
                f"{seen}); its log ends:\n{server.tail()}"
            )
        time.sleep(0.25)


def _predict(
    url: str,
    project: str,
    env: str,
    model: dict[str, Any],
    key: str,
    server: _Server,
    deadline: float,
) -> dict[str, Any]:
    name = model["name"]
    path = (
        f"/api/v1/projects/{quote(project)}/environments/{quote(env)}/models/{quote(name)}/predict"
    )
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    content = document["paths"].get(path, {}).get("post", {}).get("requestBody", {})
    # The route's named examples, one a form it takes; "dict" is the bundle's own
    # example input (typed columns).
    examples = content.get("content", {}).get("application/json", {}).get("examples", {})
    example = examples.get("dict", {}).get("value")
    if example is None:
        raise ShipyardError(
            f"{name} has no example input to send (export the bundle with reference data, "
            "or give --command with a smoke test of your own)"
        )
    headers = {"Authorization": f"Bearer {key}"}
    while True:
        started = time.perf_counter()
        answer = httpx.post(f"{url}{path}", json=example, headers=headers, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        # A new key counts from the server's next poll of the registry.
        if answer.status_code not in (401, 403) or time.monotonic() > deadline:
            break
        server.check_alive(f"{name} answered")
        time.sleep(0.25)
    served = answer.headers.get("x-shipyard-version")
    expected = {str(model["version_id"]), *([model["tag"]] if model["tag"] else [])}
    if answer.status_code != 200:
        raise ShipyardError(
            f"{name} answered HTTP {answer.status_code} to its example input: {answer.text[:300]}"
        )
    if served not in expected:
        raise ShipyardError(
            f"{name} was answered by version {served}, but {env} holds "
            f"{model['tag'] or model['version_id']}"
        )
    return {"model": name, "version": served, "status": answer.status_code, "ms": round(elapsed, 1)}


def _run(
    options: SmokeOptions, url: str, key: str, server: _Server, deadline: float
) -> dict[str, Any]:
    env = dict(
        os.environ,
        SHIPYARD_SMOKE_URL=url,
        SHIPYARD_SMOKE_API_KEY=key,
        SHIPYARD_PROJECT=options.project,
        SHIPYARD_ENV=options.environment,
    )
    command = options.command or ""
    try:
        done = subprocess.run(
            command, shell=True, env=env, timeout=max(1.0, deadline - time.monotonic())
        )
    except subprocess.TimeoutExpired:
        raise ShipyardError(f"the smoke command did not finish in time: {command}") from None
    if done.returncode != 0:
        raise ShipyardError(f"the smoke command failed (exit code {done.returncode}): {command}")
    server.check_alive("the smoke command finished")
    return {"command": command, "exit_code": done.returncode}
