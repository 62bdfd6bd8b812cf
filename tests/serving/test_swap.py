"""``shipyard serve`` as a user runs it: following an environment through a promotion and a
rollback under load without failing a request, a request in flight finishing on the version
it started on, draining on SIGTERM, and the CLI."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.cli import main
from shipyard.registry import Registry
from shipyard.serving import (
    ModelRoute,
    ModelRunner,
    RouteTable,
    ServingApp,
)

from ._hold import HeldRunner, wait_until
from .conftest import live_server, predict_path, rows_of, serve_process

PRODUCTION = predict_path("tumour_triage", "demo", "production")
MAX_REQUESTS = 20_000  # the load stops by itself even if the test's waits went wrong
MAX_SECONDS = 90.0
# After a graceful shutdown uvicorn re-raises the signal it caught, as a shell expects.
GRACEFUL_EXIT = -signal.SIGTERM


class Load:
    """Threads posting one row each, as fast as they can, recording what answered."""

    def __init__(self, base: str, key: str, body: dict[str, Any], threads: int = 4) -> None:
        self.stop = threading.Event()
        self.versions: list[list[str]] = [[] for _ in range(threads)]
        self.failures: list[str] = []
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, args=(base, key, body, i), daemon=True)
            for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, base: str, key: str, body: dict[str, Any], index: int) -> None:
        seen = self.versions[index]
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            while not self.stop.is_set():
                if self.total() > MAX_REQUESTS or time.monotonic() - self._started > MAX_SECONDS:
                    return
                try:
                    response = client.post(PRODUCTION, json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                seen.append(response.headers.get("x-shipyard-version", "?"))

    def total(self) -> int:
        return sum(len(v) for v in self.versions)

    def wait_all_on(self, version: str, after: int = 250, timeout: float = 60.0) -> None:
        """Until every thread got ``after`` more answers, the last of them from ``version``."""
        marks = [len(v) for v in self.versions]
        deadline = time.monotonic() + timeout
        while not all(
            len(v) >= m + after and v[-1] == version
            for v, m in zip(self.versions, marks, strict=True)
        ):
            assert not self.failures, self.failures[:3]
            assert time.monotonic() < deadline, f"not all on {version} after {timeout} s"
            time.sleep(0.05)


def compressed(versions: list[str]) -> list[str]:
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def test_promotion_and_rollback_under_load_drop_no_request(
    demo: Registry, database_url: str, tmp_path: Path, demo_reference: dict[str, Any]
) -> None:
    demo.add_component("demo", "production", "tumour_triage", "v1")
    demo.add_component("demo", "uat", "tumour_triage", "v2")
    _, key = demo.create_api_key("demo", "production")
    body = {"tumours": {k: v[:1] for k, v in demo_reference["tumours"].items()}}
    environment = {
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
    args = ["--project", "demo", "--env", "production", "--poll-ms", "100"]
    with serve_process(args, environment) as (base, process):
        with Load(base, key, body) as load:
            load.wait_all_on("v1")
            demo.promote("demo", "uat")  # production: v1 -> v2
            load.wait_all_on("v2")
            demo.rollback("demo", "production")  # back to v1
            load.wait_all_on("v1")
        assert load.failures == []
        assert load.total() >= 3000
        for versions in load.versions:
            assert compressed(versions) == ["v1", "v2", "v1"]
        with httpx.Client(base_url=base) as client:
            assert client.post(PRODUCTION + f"?api_key={key}", json=body).status_code == 401
            assert (
                client.post(PRODUCTION, json=body, headers={"X-API-Key": "nope"}).status_code == 401
            )
            metrics = client.get("/metrics").text
        assert 'shipyard_swaps_total{outcome="done"} 2.0' in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == GRACEFUL_EXIT
        output = process.stdout.read()  # type: ignore[union-attr]
    assert "Application shutdown complete" in output
    assert key not in output and key.split("_", 2)[2] not in output  # the secret part
    assert "serving demo/production revision" in output


def only(runner: ModelRunner) -> RouteTable:
    """A route table in which ``runner`` answers everything."""
    return RouteTable("local", "local", {runner.model: ModelRoute.single(runner)})


def test_a_request_in_flight_finishes_on_the_old_version_while_the_new_one_serves(
    demo_runner: ModelRunner,
) -> None:
    old = HeldRunner(demo_runner, "v1")
    new = ModelRunner(demo_runner.executor, demo_runner.model, "v2")
    body = rows_of(demo_runner)
    expected = demo_runner.executor.run_dict(body)
    path = predict_path("tumour_triage")
    # inline_rows=0: every request runs on a worker thread, so a held one leaves the server free.
    app = ServingApp(only(old), inline_rows=0)
    answer: dict[str, Any] = {}
    with live_server(app) as base:

        def call() -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                answer["response"] = client.post(path, json=body)

        caller = threading.Thread(target=call)
        caller.start()
        try:
            assert old.entered.wait(30), "the first request never reached v1"
            app.swap(only(new))  # as the follower does once a new revision is warm
            with httpx.Client(base_url=base, timeout=30) as client:
                after = client.post(path, json=body)
            assert (after.status_code, after.headers["x-shipyard-version"]) == (200, "v2")
            assert "response" not in answer  # still held on v1 while v2 answered
        finally:
            old.release.set()
            caller.join(60)
    response = answer["response"]
    assert (response.status_code, response.headers["x-shipyard-version"]) == (200, "v1")
    assert response.json() == expected


def refuses_connections(base: str) -> bool:
    """Whether ``base`` takes no new request any more (a server that began shutting down).

    A connection the closing listener still held in its backlog is reset rather than
    refused: that is a refusal too.
    """
    try:
        httpx.get(f"{base}/health", timeout=5)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_sigterm_lets_a_request_in_flight_finish(
    toy_bundles: dict[str, Path], tmp_path: Path
) -> None:
    # 100 rows run on a worker thread; the 7 holds the model at the gate (tests/serving/
    # _pipelines.py) until the test, having seen the server stop listening, releases it.
    held = {"t": {"x": [7.0] + [1.0] * 99}}
    gate = tmp_path / "gate"
    gate.mkdir()
    bundle = ["--bundle", str(toy_bundles["fragile"])]
    with serve_process(bundle, {"SHIPYARD_TEST_GATE": str(gate)}) as (base, process):
        answer: dict[str, Any] = {}

        def call() -> None:
            with httpx.Client() as client:
                answer["response"] = client.post(
                    base + predict_path("fragile"), json=held, timeout=60
                )

        caller = threading.Thread(target=call)
        caller.start()
        try:
            wait_until((gate / "entered").exists, "the request never reached the model")
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: refuses_connections(base), "the server still listens after SIGTERM")
            assert process.poll() is None  # draining: the request in flight keeps it running
        finally:
            (gate / "release").touch()
            caller.join(60)
        assert process.wait(30) == GRACEFUL_EXIT
    response = answer["response"]
    assert response.status_code == 200
    assert response.json()["double"]["values"][:2] == [14.0, 2.0]


def test_serve_needs_a_bundle_or_an_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"])
    assert exit_info.value.code == 2
    assert "--bundle FILE" in capsys.readouterr().err


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``shipyard ARGS`` in-process; its stdout (fails on a non-zero exit)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    return out


def test_apikey_commands(
    demo: Registry,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    where = ("--project", "demo", "--env", "production")
    created = json.loads(cli(capsys, "apikey", "create", *where, "--json"))
    assert created["key"].startswith(f"sya_{created['id']}_")
    listed = cli(capsys, "apikey", "list", *where, "--json")
    assert created["key"] not in listed
    assert json.loads(listed)[0]["revoked"] is False
    assert "revoked API key" in cli(capsys, "apikey", "revoke", str(created["id"]), *where)
    shown = cli(capsys, "apikey", "create", *where, "--name", "web")
    assert "shown only now" in shown and f"sya_{created['id'] + 1}_" in shown


def test_several_workers_report_their_metrics_together(toy_bundles: dict[str, Path]) -> None:
    body = {"frame": {"a": [1.0], "b": [2.0], "c": [3.0]}}
    with serve_process(["--bundle", str(toy_bundles["frame"]), "--workers", "2"]) as (base, _):
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            response = httpx.post(base + predict_path("frame_total"), json=body, timeout=30)
            assert response.status_code == 200
        text = httpx.get(base + "/metrics", timeout=30).text
    counted = re.findall(r'shipyard_requests_total\{[^}]*status="200"[^}]*\} ([\d.]+)', text)
    assert sum(float(c) for c in counted) == 20.0
