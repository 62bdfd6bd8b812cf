"""The serving step of ``shipyard demo``: serve an environment, call it as a user would, stop.

``serve_step`` runs the real ``shipyard serve`` in a subprocess against the demo's
embedded registry (``WORKDIR/.shipyard``), makes an API key, sends one prediction with
the same bytes the printed curl command sends, and shuts the server down with SIGTERM.
``serving`` is that server as a context manager, for the steps that call it otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console

from ..errors import ShipyardError
from ._pipeline import reference

if TYPE_CHECKING:
    from ..registry import Registry

START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shipyard() -> list[str]:
    found = Path(sys.executable).with_name("shipyard")
    return [str(found)] if found.exists() else [shutil.which("shipyard") or "shipyard"]


def open_registry(workdir: Path) -> Registry:
    """The demo's embedded registry (``WORKDIR/.shipyard``), acting as 'demo'."""
    from ..registry import LocalStore, Registry, create_engine

    home = (workdir / ".shipyard").resolve()
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    return Registry(engine, LocalStore(home / "artifacts"), "demo")


@dataclass(frozen=True)
class Served:
    """A running ``shipyard serve``: its ``base`` URL, the file holding the API key made
    for it, and the name of the environment's first model."""

    base: str
    key_file: Path
    model: str

    def key(self) -> str:
        return self.key_file.read_text().strip()


@contextmanager
def serving(
    workdir: Path,
    project: str,
    env: str,
    console: Console,
    public_key: Path | None = None,
    log_name: str = "serve.log",
) -> Iterator[Served]:
    """Serve ``project``/``env`` from ``WORKDIR/.shipyard`` on localhost until the block ends.

    Makes an API key of ``env`` (kept in ``WORKDIR/api-key.txt``, mode 600, never printed),
    starts the real ``shipyard serve`` in a subprocess (its output in ``WORKDIR/log_name``),
    waits until it is ready, and after the block stops it with SIGTERM, printing the
    commands a user would type. ``public_key`` makes the server check bundle signatures.
    Raises ShipyardError when the server does not start or does not stop cleanly; the
    server process is always stopped.
    """
    home = (workdir / ".shipyard").resolve()
    with open_registry(workdir) as registry:
        model = next(c.name for c in registry.status(project, env).components if c.kind == "model")
        console.print(f"[dim]$ shipyard apikey create --project {project} --env {env}[/]")
        info, key = registry.create_api_key(project, env, "demo")
    key_file = workdir / "api-key.txt"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    console.print(
        f"API key {info.id} made; stored hashed in the registry, the key is in {key_file}"
    )

    port = _free_port()
    console.print(
        f"[dim]$ shipyard serve --project {project} --env {env} --port {port}[/]", soft_wrap=True
    )
    environment = {**os.environ, "SHIPYARD_HOME": str(home)}
    environment.pop("SHIPYARD_DATABASE_URL", None)
    environment.pop("SHIPYARD_ARTIFACT_STORE", None)
    if public_key is not None:
        environment["SHIPYARD_PUBLIC_KEY"] = str(public_key.resolve())
    log_path = workdir / log_name
    log = log_path.open("w")
    server = subprocess.Popen(
        [*_shipyard(), "serve", "--project", project, "--env", env, "--port", str(port)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, server, log_path)
        yield Served(base, key_file, model)
    finally:
        code = _stop(server)
        log.close()
    if code not in (0, -signal.SIGTERM):
        raise ShipyardError(f"the server exited with {code}; see {log_path}")
    console.print(f"server drained and stopped (SIGTERM); its log: {log_path}", soft_wrap=True)


def serve_step(
    workdir: Path,
    project: str,
    env: str,
    console: Console,
    public_key: Path | None = None,
) -> dict[str, Any]:
    """Serve ``project``/``env`` from ``WORKDIR/.shipyard`` on localhost, predict once, stop.

    Prints the commands a user would type (apikey create, serve, curl) and the answer.
    ``public_key`` makes the server check bundle signatures. Returns the answer's JSON.
    Raises ShipyardError when the server does not start, the prediction fails, or the
    server does not stop cleanly; the server process is always stopped.
    """
    with serving(workdir, project, env, console, public_key) as served:
        return _predict(served, project, env, workdir, console)


def curl(url: str, key_file: Path | None = None, body: Path | None = None) -> str:
    """The curl command a user would type for ``url`` (with the key read from ``key_file``,
    POSTing ``body`` as JSON), dimmed, to print with ``soft_wrap``."""
    parts = ["curl -s"]
    if body is not None:
        parts.append("-X POST")
    parts.append(url)
    if key_file is not None:
        parts.append(f'-H "X-API-Key: $(cat {key_file})"')
    if body is not None:
        parts.append(f'-H "Content-Type: application/json" -d @{body}')
    return f"[dim]$ {' '.join(parts)}[/]"


def _wait_for(base: str, server: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ShipyardError(f"shipyard serve exited with {server.returncode}; see {log}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ShipyardError(f"shipyard serve did not become ready in {START_TIMEOUT:.0f} s; see {log}")


def _predict(
    served: Served, project: str, env: str, workdir: Path, console: Console
) -> dict[str, Any]:
    columns = reference()["tumours"]
    body = {"tumours": {name: values[:1] for name, values in columns.items()}}
    request = workdir / "predict-request.json"
    request.write_text(json.dumps(body))
    url = (
        f"{served.base}/api/v1/projects/{project}/environments/{env}/models/{served.model}/predict"
    )
    console.print(curl(url, served.key_file, request), soft_wrap=True)
    response = httpx.post(
        url,
        content=request.read_bytes(),
        headers={"X-API-Key": served.key(), "Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 200:
        raise ShipyardError(f"the prediction failed: HTTP {response.status_code} {response.text}")
    console.print(response.text, soft_wrap=True)
    console.print(
        f"answered by {served.model} {response.headers['x-shipyard-version']} "
        f"(X-Shipyard-Version), request id {response.headers['x-request-id']}"
    )
    return dict(response.json())


def _stop(server: subprocess.Popen[Any]) -> int:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
    return int(server.returncode)
