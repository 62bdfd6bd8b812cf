"""A/B splits, shadow traffic, request capture, and a server pinned to one version."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from shipyard.cli import main
from shipyard.errors import NotFound
from shipyard.registry import Registry
from shipyard.serving import (
    Capture,
    EnvironmentLoader,
    Metrics,
    ModelRoute,
    ModelRunner,
    ParquetFolder,
    RouteTable,
    ServeOptions,
    ServingApp,
    build_app,
)

from ._hold import HeldRunner, wait_until
from .conftest import live_server, predict_path, rows_of

DEMO = predict_path("tumour_triage")


def relabel(runner: ModelRunner, version: str) -> ModelRunner:
    """The same loaded bundle answering as another version."""
    return ModelRunner(runner.executor, runner.model, version)


def table_of(route: ModelRoute) -> RouteTable:
    return RouteTable("local", "local", {route.name: route})


def within_4_sigma(hits: int, n: int, p: float) -> bool:
    return abs(hits - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_ab_weights_split_the_traffic(demo_runner: ModelRunner) -> None:
    v1, v2 = relabel(demo_runner, "v1"), relabel(demo_runner, "v2")
    app = ServingApp(table_of(ModelRoute("tumour_triage", (v1, v2), (80.0, 20.0))), seed=7)
    body = rows_of(demo_runner)
    expected = demo_runner.executor.run_dict(body)
    n = 1200
    seen: dict[str, int] = {}
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        for _ in range(n):
            response = client.post(DEMO, json=body)
            assert response.status_code == 200 and response.json() == expected
            version = response.headers["x-shipyard-version"]
            seen[version] = seen.get(version, 0) + 1
    assert set(seen) == {"v1", "v2"}
    assert within_4_sigma(seen["v2"], n, 0.2), seen


def test_the_loader_builds_ab_shadow_and_capture_from_the_environment(demo: Registry) -> None:
    demo.add_component("demo", "production", "tumour_triage", "v1")
    demo.set_setting(
        "traffic",
        {"weights": {"v1": 70, "v2": 30}, "shadow": "v3"},
        "demo",
        "production",
        "tumour_triage",
    )
    demo.set_environment_config("demo", "production", {"capture": {"rate": 0.25}})
    table = EnvironmentLoader(demo, "demo", "production").load()
    assert table.capture_rate == 0.25
    route = table.models["tumour_triage"]
    assert [r.version for r in route.live] == ["v1", "v2"]
    assert route.shares == (70.0, 30.0)
    assert route.shadow is not None and route.shadow.version == "v3"
    assert sorted(route.versions) == ["v1", "v2", "v3"]
    assert {r.warm_seconds is not None for _, r in table.runners()} == {True}


def test_shadow_gets_a_copy_its_answers_are_logged_and_counted_never_returned(
    demo_runner: ModelRunner, caplog: pytest.LogCaptureFixture
) -> None:
    live, shadow = relabel(demo_runner, "v1"), relabel(demo_runner, "v3")
    metrics = Metrics()
    app = ServingApp(
        table_of(ModelRoute("tumour_triage", (live,), (100.0,), shadow)), metrics=metrics
    )
    ids = []
    with (
        caplog.at_level(logging.INFO, logger="shipyard.serving.shadow"),
        live_server(app) as base,
        httpx.Client(base_url=base) as client,
    ):
        for _ in range(20):
            response = client.post(DEMO, json=rows_of(demo_runner))
            assert response.headers["x-shipyard-version"] == "v1"
            assert set(response.json()) == {"p_malignant", "decision"}
            ids.append(response.headers["x-request-id"])
        wait_until(
            lambda: metrics.shadow.labels("tumour_triage", "v3", "ok")._value.get() == 20,
            "the shadow did not answer all 20 copies",
        )
        metrics_text = client.get("/metrics").text
    assert (
        'shipyard_shadow_requests_total{model="tumour_triage",outcome="ok",version="v3"} 20.0'
        in metrics_text
    )
    shadow_lines = [r.getMessage() for r in caplog.records if r.name == "shipyard.serving.shadow"]
    assert all(any(i in line for line in shadow_lines) for i in ids)
    assert '"decision":["refer"]' in shadow_lines[0]


def test_the_answer_never_waits_for_the_shadow(demo_runner: ModelRunner) -> None:
    live, shadow = relabel(demo_runner, "v1"), HeldRunner(demo_runner, "v3")
    metrics = Metrics()
    app = ServingApp(
        table_of(ModelRoute("tumour_triage", (live,), (100.0,), shadow)), metrics=metrics
    )
    answered = metrics.shadow.labels("tumour_triage", "v3", "ok")
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        try:
            first = client.post(DEMO, json=rows_of(demo_runner))
            assert shadow.entered.wait(30), "the shadow never got its copy"
            second = client.post(DEMO, json=rows_of(demo_runner))
            # The shadow is released only below: neither answer can have waited for it.
            for response in (first, second):
                assert response.status_code == 200
                assert response.headers["x-shipyard-version"] == "v1"
            assert answered._value.get() == 0
        finally:
            shadow.release.set()
        wait_until(lambda: answered._value.get() == 2, "the released shadow did not answer")


def test_capture_writes_sampled_inputs_and_outputs_to_parquet(
    demo_runner: ModelRunner, tmp_path: Path
) -> None:
    metrics = Metrics()
    capture = Capture(ParquetFolder(tmp_path), metrics, rate=1.0, rows_per_file=10)
    app = ServingApp(table_of(ModelRoute.single(demo_runner)), metrics=metrics, capture=capture)
    ids = []
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        for count in (1, 2, 3, 4, 5):
            response = client.post(DEMO, json=rows_of(demo_runner, count))
            ids += [response.headers["x-request-id"]] * count
    files = sorted((tmp_path / "tumour_triage" / "1.0.0").glob("*.parquet"))
    assert len(files) >= 2  # rotated at 10 rows, the rest flushed at shutdown
    rows = [pq.read_table(f).to_pydict() for f in files]
    assert sum(len(r["request_id"]) for r in rows) == 15
    assert sorted(i for r in rows for i in r["request_id"]) == sorted(ids)
    first = rows[0]
    assert (
        first["input.tumours.mean_radius"][0] == rows_of(demo_runner)["tumours"]["mean_radius"][0]
    )
    assert first["output.decision"][0] in {"refer", "review", "routine"}
    assert first["version"][0] == "1.0.0"


def test_capture_samples_its_share(demo_runner: ModelRunner) -> None:
    capture = Capture(ParquetFolder("/nonexistent"), Metrics(), rate=0.25, seed=3)
    hits = sum(capture.sampled() for _ in range(4000))
    assert within_4_sigma(hits, 4000, 0.25)
    capture.rate = 0.0
    assert not any(capture.sampled() for _ in range(100))


class BlockedSink:
    """A writer stuck on a full disk until released (``entered`` once it is stuck)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writes = 0

    def write(self, model: str, version: str, table: object) -> None:
        self.entered.set()
        if not self.release.wait(60):
            raise TimeoutError("the blocked writer was never released")
        self.writes += 1


def test_a_blocked_writer_never_fails_or_slows_requests_and_drops_are_counted(
    demo_runner: ModelRunner,
) -> None:
    metrics = Metrics()
    sink = BlockedSink()
    # One row per file: the first captured request goes straight to the (stuck) writer.
    capture = Capture(sink, metrics, rate=1.0, queue_size=5, rows_per_file=1)
    app = ServingApp(table_of(ModelRoute.single(demo_runner)), metrics=metrics, capture=capture)
    try:
        with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            assert client.post(DEMO, json=rows_of(demo_runner)).status_code == 200
            assert sink.entered.wait(30), "the first capture never reached the writer"
            # Every one of these is answered while the writer is stuck: had a request
            # waited for it, the client would time out, as the writer is released only
            # after the last answer.
            for _ in range(199):
                assert client.post(DEMO, json=rows_of(demo_runner)).status_code == 200
            assert sink.writes == 0
            text = client.get("/metrics").text
            sink.release.set()
    finally:
        sink.release.set()
    dropped = metrics.capture_dropped.labels("queue_full")._value.get()
    assert dropped >= 150
    assert f'shipyard_capture_dropped_total{{reason="queue_full"}} {dropped}' in text
    assert sink.writes >= 1


class FullDisk:
    def write(self, model: str, version: str, table: object) -> None:
        raise OSError(28, "No space left on device")


def test_a_failing_writer_loses_only_captures(demo_runner: ModelRunner) -> None:
    metrics = Metrics()
    capture = Capture(FullDisk(), metrics, rate=1.0, rows_per_file=1)
    app = ServingApp(table_of(ModelRoute.single(demo_runner)), metrics=metrics, capture=capture)
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        for _ in range(5):
            assert client.post(DEMO, json=rows_of(demo_runner)).status_code == 200
    assert metrics.capture_dropped.labels("write_failed")._value.get() == 5


# --- pinned to one version (an arm of a split that a gateway routes) ----------------------

MODEL = "tumour_triage"
PRODUCTION = predict_path(MODEL, "demo", "production")


def split_evenly(registry: Registry, shadow: str | None = None) -> None:
    """Production deploys v1 and splits its traffic 50/50 between v1 and v2."""
    registry.add_component("demo", "production", MODEL, "v1")
    traffic = {"weights": {"v1": 50, "v2": 50}, "shadow": shadow}
    registry.set_setting("traffic", traffic, "demo", "production", MODEL)


def answered_by(base: str, body: dict[str, Any], n: int) -> dict[str, int]:
    """How many of ``n`` predictions each version answered."""
    seen: dict[str, int] = {}
    with httpx.Client(base_url=base) as client:
        for _ in range(n):
            response = client.post(PRODUCTION, json=body)
            assert response.status_code == 200, response.text
            version = response.headers["x-shipyard-version"]
            seen[version] = seen.get(version, 0) + 1
    return seen


def test_a_pinned_server_answers_from_its_version_only_whatever_the_split(
    demo: Registry, demo_runner: ModelRunner
) -> None:
    split_evenly(demo)
    body = rows_of(demo_runner)
    where = {"project": "demo", "environment": "production", "seed": 11}
    with live_server(build_app(ServeOptions(**where), demo)) as base:
        assert set(answered_by(base, body, 100)) == {"v1", "v2"}  # unpinned: the 50/50 split
    pinned = build_app(ServeOptions(**where, pins={MODEL: "v2"}), demo)
    with live_server(pinned) as base, httpx.Client(base_url=base) as client:
        assert answered_by(base, body, 200) == {"v2": 200}
        health = client.get("/health").json()
        assert health["pinned"] == {MODEL: "v2"}
        assert health["models"] == {MODEL: ["v2"]}  # v1 is neither loaded nor addressable
        assert client.get(f"/v2/models/{MODEL}").json()["versions"] == ["v2"]
        refused = client.post(f"/v2/models/{MODEL}/versions/v1/infer", json={"inputs": []})
        assert refused.status_code == 404 and "versions: v2" in refused.text
        loaded = [line for line in client.get("/metrics").text.splitlines() if "_loaded{" in line]
    assert loaded and all('version="v2"' in line for line in loaded), loaded


def test_a_pin_keeps_the_shadow_and_a_pin_to_the_shadow_serves_it_alone(demo: Registry) -> None:
    split_evenly(demo, shadow="v3")
    route = EnvironmentLoader(demo, "demo", "production", pins={MODEL: "v2"}).load().models[MODEL]
    assert [r.version for r in route.live] == ["v2"] and route.shares == (1.0,)
    assert route.shadow is not None and route.shadow.version == "v3"
    assert sorted(route.versions) == ["v2", "v3"]
    route = EnvironmentLoader(demo, "demo", "production", pins={MODEL: "v3"}).load().models[MODEL]
    assert [r.version for r in route.live] == ["v3"] and route.shadow is None


@pytest.mark.parametrize(
    ("pins", "said"),
    [
        (
            {MODEL: "v3"},
            f"--pin {MODEL}=v3: demo/production does not hold {MODEL} v3 at revision {{}} "
            "(it holds v1 (deployed, traffic 50%), v2 (traffic 50%))",
        ),
        (
            {"churn": "v1"},
            "--pin churn=v1: demo/production holds no model 'churn' at revision {} "
            f"(models: {MODEL})",
        ),
    ],
    ids=["version", "model"],
)
def test_a_pin_the_environment_cannot_serve_names_what_it_holds(
    demo: Registry, pins: dict[str, str], said: str
) -> None:
    split_evenly(demo)
    loader = EnvironmentLoader(demo, "demo", "production", pins=pins)
    with pytest.raises(NotFound) as refused:
        loader.load()
    assert str(refused.value) == said.format(demo.get_environment("demo", "production").revision)
    assert loader._loaded == {}  # refused before anything was fetched or loaded


def test_a_revision_that_drops_the_pinned_version_is_refused_and_the_pin_keeps_serving(
    demo: Registry, demo_runner: ModelRunner, caplog: pytest.LogCaptureFixture
) -> None:
    split_evenly(demo)
    options = ServeOptions(project="demo", environment="production", pins={MODEL: "v2"}, poll_ms=20)
    app = build_app(options, demo)
    body = rows_of(demo_runner)
    with (
        caplog.at_level(logging.ERROR, logger="shipyard.serving"),
        live_server(app) as base,
        httpx.Client(base_url=base) as client,
    ):
        first = app.table.revision
        demo.set_setting("traffic", {"weights": {"v1": 100}}, "demo", "production", MODEL)
        dropped = demo.get_environment("demo", "production").revision
        wait_until(lambda: "not_loaded" in client.get("/health").json(), "no refusal shown")
        health = client.get("/health").json()
        assert health["revision"] == first and health["pinned"] == {MODEL: "v2"}
        assert health["not_loaded"]["revision"] == dropped
        assert f"does not hold {MODEL} v2 at revision {dropped}" in health["not_loaded"]["reason"]
        assert answered_by(base, body, 20) == {"v2": 20}  # still the old table
        demo.set_setting("traffic", {"weights": {"v1": 90, "v2": 10}}, "demo", "production", MODEL)
        wait_until(lambda: app.table.revision != first, "the revision holding v2 again")
        assert "not_loaded" not in client.get("/health").json()
        assert answered_by(base, body, 20) == {"v2": 20}
    assert any(
        f"revision {dropped} of demo/production failed to load" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("pins", "code", "said"),
    [
        ([f"{MODEL}=v3"], 1, f"does not hold {MODEL} v3 at revision"),
        ([f"{MODEL}"], 2, f"--pin '{MODEL}': give MODEL=VERSION"),
        ([f"{MODEL}=v1", f"{MODEL}=v2"], 2, f"--pin {MODEL}: pinned to both v1 and v2"),
    ],
    ids=["not-held", "malformed", "twice"],
)
def test_serve_refuses_a_bad_pin_in_one_line_before_serving(
    demo: Registry,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pins: list[str],
    code: int,
    said: str,
) -> None:
    split_evenly(demo)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    args = ["serve", "--project", "demo", "--env", "production", "--workers", "2"]
    for pin in pins:
        args += ["--pin", pin]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == code
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert "serving" not in out
    if code == 1:
        assert "(it holds v1 (deployed, traffic 50%), v2 (traffic 50%))" in err


def test_serve_refuses_a_pin_with_a_bundle_file(
    signed_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--bundle", str(signed_bundle), "--pin", f"{MODEL}=v1"])
    assert exit_info.value.code == 2
    assert "--pin picks among an environment's versions" in capsys.readouterr().err
