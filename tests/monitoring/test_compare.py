"""Comparing the versions an environment serves: A/B splits and shadows, over real serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from shipyard.monitoring import compare
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
from tests.serving.conftest import live_server

from . import _data
from .test_serving import PREDICT, body


def serve(route: ModelRoute, folder: Path, requests: list[dict], seed: int = 5) -> str:
    """Send ``requests`` through a real server with full capture; returns its /metrics text."""
    metrics = Metrics()
    capture = Capture(ParquetFolder(folder), metrics, rate=1.0)
    app = ServingApp(
        RouteTable("local", "local", {"loan_risk": route}),
        metrics=metrics,
        capture=capture,
        seed=seed,
    )
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        for payload in requests:
            client.post(PREDICT, json=payload)
        shadow = route.shadow
        if shadow is not None:
            done = metrics.shadow.labels("loan_risk", shadow.version, "ok")
            wait_until(lambda: done._value.get() == len(requests), "the shadow fell behind")
        return client.get("/metrics").text


def test_a_shadow_is_set_beside_its_live_version_with_the_agreement_of_their_answers(
    loan_runners: dict[str, ModelRunner], capture_dir: Path
) -> None:
    requests = [body(5, seed) for seed in range(20)]
    route = ModelRoute("loan_risk", (loan_runners["v1"],), (100.0,), loan_runners["v2"])
    text = serve(route, capture_dir, requests)
    result = compare(capture_dir, "loan_risk", metrics_text=text)
    live, shadow = result.versions
    assert (live.version, live.role, shadow.version, shadow.role) == ("v1", "live", "v2", "shadow")
    assert (live.requests, live.rows, shadow.rows) == (20, 100, 100)
    assert (live.answered, live.error_rate) == (20, 0.0)
    assert live.latency_ms["p50"] is not None and live.latency_ms["p99"] >= live.latency_ms["p50"]
    # The same rows through both models: the share where their decisions agree.
    x = np.concatenate(
        [np.column_stack([b["loans"]["income"], b["loans"]["age"]]) for b in requests]
    )
    same = _data.decide(_data.score(x)) == _data.decide(_data.cautious_score(x))
    agreement = shadow.vs_primary["agreement"]
    assert agreement["rows"] == 100
    assert agreement["decision"]["agreement"] == float(same.mean()) < 1.0
    assert agreement["p_default"]["agreement"] == 0.0  # probabilities differ on every row
    assert shadow.vs_primary["p_default"]["test"] == "ks"


def test_an_ab_split_counts_each_versions_requests_and_errors_from_the_metrics(
    loan_runners: dict[str, ModelRunner], capture_dir: Path
) -> None:
    good = [body(2, seed) for seed in range(40)]
    bad = [{"loans": {"income": [1.0]}}] * 10  # age and region missing: 422
    route = ModelRoute("loan_risk", (loan_runners["v1"], loan_runners["v2"]), (50.0, 50.0), None)
    text = serve(route, capture_dir, good + bad)
    result = compare(capture_dir, "loan_risk", metrics_text=text, weights={"v1": 50, "v2": 50})
    sides = {s.version: s for s in result.versions}
    assert set(sides) == {"v1", "v2"} and all(s.role == "live" for s in sides.values())
    assert sum(s.requests for s in sides.values()) == 40
    assert sum(s.answered for s in sides.values()) == 50  # type: ignore[misc]
    errors = sum(round(s.error_rate * s.answered) for s in sides.values())  # type: ignore[operator]
    assert errors == 10
    other = result.versions[1]
    assert 0.0 <= other.vs_primary["error_rate"]["p_value"] <= 1.0
    assert other.vs_primary["decision"]["test"] == "js"
