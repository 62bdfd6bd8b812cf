"""What serving records for monitoring: row ids, roles, latency, shadow answers, drift gauges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.serving import (
    Capture,
    Metrics,
    ModelRoute,
    ModelRunner,
    ParquetFolder,
    RouteTable,
    ServingApp,
)
from tests.serving._hold import wait_until
from tests.serving.conftest import live_server, predict_path

from . import _data

PREDICT = predict_path("loan_risk")


def body(count: int, seed: int) -> dict[str, Any]:
    data = _data.rows(count, seed)
    return {"loans": {name: values.tolist() for name, values in data.items()}}


def read(folder: Path) -> dict[str, list[Any]]:
    tables = [pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]
    return pa.concat_tables(tables).to_pydict() if tables else {}


def test_capture_names_each_row_and_keeps_the_shadow_answer_beside_the_live_one(
    loan_runners: dict[str, ModelRunner], tmp_path: Path
) -> None:
    metrics = Metrics()
    capture = Capture(ParquetFolder(tmp_path), metrics, rate=1.0)
    route = ModelRoute("loan_risk", (loan_runners["v1"],), (100.0,), loan_runners["v2"])
    app = ServingApp(
        RouteTable("local", "local", {"loan_risk": route}), metrics=metrics, capture=capture
    )
    ids = []
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        for seed, count in enumerate((1, 3, 2)):
            response = client.post(PREDICT, json=body(count, seed))
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
        wait_until(
            lambda: metrics.shadow.labels("loan_risk", "v2", "ok")._value.get() == 3,
            "the shadow did not answer every copy",
        )
    live = read(tmp_path / "loan_risk" / "v1")
    shadow = read(tmp_path / "loan_risk" / "v2")
    assert sorted(zip(live["request_id"], live["row"], strict=True)) == sorted(
        [(ids[0], 0), (ids[1], 0), (ids[1], 1), (ids[1], 2), (ids[2], 0), (ids[2], 1)]
    )
    assert set(live["role"]) == {"live"} and set(shadow["role"]) == {"shadow"}
    assert all(ms is not None and ms > 0 for ms in live["latency_ms"])
    # The shadow's answers to the same rows, under the same request ids, outputs only.
    assert sorted(zip(shadow["request_id"], shadow["row"], strict=True)) == sorted(
        zip(live["request_id"], live["row"], strict=True)
    )
    assert not any(name.startswith("input.") for name in shadow)
    assert live["output.p_default"] != shadow["output.p_default"]


def test_metrics_expose_the_latest_drift_results_as_gauges() -> None:
    metrics = Metrics()
    stored = [
        {
            "model": "loan_risk",
            "version": "v1",
            "column": "loans.income",
            "test": "psi",
            "score": 0.31,
            "drifted": True,
        },
        {
            "model": "loan_risk",
            "version": "v1",
            "column": "loans.age",
            "test": "ks",
            "score": 0.02,
            "drifted": False,
        },
    ]
    metrics.follow_drift(lambda: stored)

    def shown() -> bool:
        text = metrics.render().decode()
        return 'column="loans.income",model="loan_risk",test="psi",version="v1"} 0.31' in text

    wait_until(shown, "the drift gauges never showed the stored results")
    text = metrics.render().decode()
    assert (
        'shipyard_drift_detected{column="loans.age",model="loan_risk",test="ks",version="v1"} 0.0'
        in text
    )


def test_a_registry_that_cannot_be_read_keeps_the_gauges_and_serving_going() -> None:
    metrics = Metrics()
    calls = []

    def broken() -> list[dict[str, Any]]:
        calls.append(1)
        raise OSError("registry unreachable")

    metrics.follow_drift(broken)
    metrics.render()
    wait_until(lambda: calls, "the gauges never tried to read")
    assert "shipyard_drift_score gauge" in metrics.render().decode().replace("# TYPE ", "")
