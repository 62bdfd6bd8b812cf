"""What the played flows run against: a real ``shipyard server`` on loopback, seeded with
project demo and v1 of the demo model on every environment, and git as a runner's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.registry import Registry
from shipyard.registry_http import RegistryClient
from tests.serving._hold import wait_until

MODEL = "tumour_triage"
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


@dataclass
class Server:
    """A ``shipyard server`` process on loopback and the tokens made for it."""

    url: str
    deployer: str
    viewer: str

    def client(self, token: str | None = None) -> RegistryClient:
        return RegistryClient(self.url, token or self.viewer)

    def state(self, step: str = "") -> dict[str, Any]:
        """Each environment of project demo: what it holds (component -> tag or candidate
        id); printed, after ``step`` (what was just played), for ``pytest -s`` runs."""
        with self.client() as registry:
            found = {}
            for env in registry.list_environments("demo"):
                status = registry.status("demo", env["name"])
                found[env["name"]] = {
                    "revision": status["revision"],
                    "challenger_of": env["challenger_of"],
                    "components": {
                        c["name"]: c["tag"] or f"candidate {c['version_id']}"
                        for c in status["components"]
                    },
                }
        print(f"registry after {step}: {json.dumps(found)}" if step else json.dumps(found))
        return found


@contextmanager
def registry_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_pair: tuple[Path, Path], bundle: Path
) -> Iterator[Server]:
    """Project demo with ``bundle`` as v1 of its model on every environment, the key pair's
    public key trusted as ``release``, served by ``shipyard server``."""
    home = tmp_path / "registry"
    for name in ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_DATABASE_URL", "SHIPYARD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "ops")
    with Registry.open() as registry:
        registry.create_project("demo", ["integration", "uat", "production"])
        registry.trust_key("release", key_pair[1].read_text())
        registry.register_model("demo", bundle)
        registry.tag("demo", MODEL, 1)
        registry.add_component("demo", "integration", MODEL)
        registry.promote("demo", "integration")
        registry.promote("demo", "uat")
        deployer = registry.create_token("ci", "deployer")[1]
        viewer = registry.create_token("checks", "viewer")[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [SHIPYARD, "server", "--host", "127.0.0.1", "--port", str(port)],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "shipyard server started", timeout=60)
        yield Server(url, deployer, viewer)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def git(folder: Path, *args: str) -> str:
    """Run git in ``folder`` as a developer ``dev``; its output."""
    done = subprocess.run(
        ["git", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "dev",
            "GIT_AUTHOR_EMAIL": "dev@example.org",
            "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "dev@example.org",
        },
    )
    return done.stdout.strip()
