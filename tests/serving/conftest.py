"""Serving fixtures: bundles, and real servers on free loopback ports that always stop.

``live_server(app)`` (tests/conftest.py's ``serving``) runs uvicorn in a thread on a
free 127.0.0.1 port; ``guarded_server(app, limits)`` does the same behind what
``shipyard serve`` runs (its protocol and read limits); ``serve_process(args)``
runs ``shipyard serve`` in a subprocess. Each waits a bounded time for the server to
answer and stops it on the way out, even when the test fails. The registry fixtures
(SQLite and PostgreSQL) come from tests/registry.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.serving import ModelRunner, ServingApp, bundle_table
from shipyard.serving._protocol import GuardedConfig, ReadLimits
from tests.conftest import serving as live_server  # noqa: F401  (tests import it from here)
from tests.conftest import uvicorn_in_thread
from tests.registry.conftest import bare_registry, demo, registry  # noqa: F401  (fixtures used here)

from . import _pipelines

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def guarded_server(
    app: Any, limits: ReadLimits | None = None, keep_alive_timeout: int = 5
) -> Iterator[str]:
    """``app`` on a free loopback port, served as ``shipyard serve`` serves; its base URL.

    ``limits``: how long a request's head and body may take (default: serve's).
    """
    config = GuardedConfig(
        app,
        limits=limits,
        timeout_keep_alive=keep_alive_timeout,
        log_level="warning",
        lifespan="on",
    )
    what = "the test model server"
    with uvicorn_in_thread(config, free_socket(), what, START_TIMEOUT, STOP_TIMEOUT) as url:
        yield url


@contextmanager
def serve_process(
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    subcommand: str = "serve",
    output: Any = subprocess.PIPE,
) -> Iterator[tuple[str, Any]]:
    """``shipyard serve ARGS --port P`` in a subprocess; yields (base URL, Popen).

    Waits until /health answers; SIGTERMs (then kills) the process on the way out.
    ``subcommand="server"`` runs the registry server instead; ``output`` is where the
    process writes (a pipe the test may read; give a file to a chatty process).
    """
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # uvicorn binds it itself; the port stays free in between on loopback
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    command = [shipyard, subcommand, *args, "--port", str(port)]
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                said = process.stdout.read() if process.stdout else "(see its output file)"
                raise RuntimeError(f"shipyard {subcommand} exited: {said}")
            try:
                if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"shipyard {subcommand} did not start in time")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)


@pytest.fixture(scope="session")
def toy_bundles(
    tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> dict[str, Path]:
    """Bundles of the small pipelines: frame (a, b, c), tensors (a, b, c as list), fragile.

    Signed with the test key, which the ``registry`` fixture trusts.
    """
    folder = tmp_path_factory.mktemp("toy-bundles")
    key = key_pair[0]
    return {
        "frame": _pipelines.export(
            _pipelines.frame_pipeline(),
            folder,
            {"frame": {"a": [1.0, 4.0], "b": [2.0, 5.0], "c": [3.0, 6.0]}},
            key,
        ),
        "tensors": _pipelines.export(
            _pipelines.tensor_pipeline(),
            folder,
            {"tensors": {"a": ["s1", "s2"], "b": [1, 2], "c": [[1.0, 2.0], [3.0, 4.0]]}},
            key,
        ),
        "fragile": _pipelines.export(
            _pipelines.fragile_pipeline(), folder, {"t": {"x": [1.0, 2.0]}}, key
        ),
    }


@pytest.fixture(scope="session")
def demo_runner(signed_bundle: Path) -> ModelRunner:
    """The demo bundle (tumour_triage 1.0.0, native model) loaded and warm."""
    runner = ModelRunner.from_bundle(signed_bundle)
    runner.warm_up()
    return runner


@pytest.fixture(scope="session")
def toy_runners(toy_bundles: dict[str, Path]) -> dict[str, ModelRunner]:
    """The toy bundles loaded, by short name."""
    return {name: ModelRunner.from_bundle(path) for name, path in toy_bundles.items()}


@pytest.fixture()
def app(demo_runner: ModelRunner, toy_runners: dict[str, ModelRunner]) -> ServingApp:
    """An app serving the demo model and the toy models (no keys, project/env 'local')."""
    return ServingApp(bundle_table([demo_runner, *toy_runners.values()]), seed=1)


@pytest.fixture()
def server(app: ServingApp) -> Iterator[str]:
    """``app`` on a loopback port, as ``shipyard serve`` serves it: its base URL."""
    with guarded_server(app) as base:
        yield base


@pytest.fixture()
def client(server: str) -> Iterator[httpx.Client]:
    """An HTTP client for ``server``."""
    with httpx.Client(base_url=server, timeout=30.0) as http:
        yield http


def predict_path(model: str, project: str = "local", env: str = "local") -> str:
    """Our predict route for ``model``."""
    return f"/api/v1/projects/{project}/environments/{env}/models/{model}/predict"


def rows_of(runner: ModelRunner, count: int = 1) -> dict[str, Any]:
    """The first ``count`` rows of the demo bundle's example input, as plain columns."""
    example = runner.example_input["tumours"]
    return {"tumours": {name: column["values"][:count] for name, column in example.items()}}
