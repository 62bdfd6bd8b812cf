"""Monitoring over a registry server (SHIPYARD_URL): the same drift run, stored over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.monitoring import run_drift
from shipyard.registry import PermissionDenied, to_json
from shipyard.registry_http import RegistryClient
from tests.conftest import ApiServer

from . import _data


def test_drift_runs_and_is_recorded_through_the_registry_api(
    api_server: ApiServer, loan_bundles: dict[str, Path], capture_dir: Path
) -> None:
    api_server.registry.create_project("demo")
    version = api_server.registry.register_model("demo", loan_bundles["v1"])
    api_server.registry.tag("demo", version.model, version.version_id)
    _data.capture(capture_dir, _data.rows(1000, seed=91, income_shift=5.0))
    with RegistryClient(api_server.url, api_server.token("deployer")) as client:
        run = run_drift(client, "demo", "production", folder=capture_dir)
        assert run.recorded == len(run.findings) > 0
        stored = to_json(client.drift_results("demo", "production", latest=True))
    assert {r["column"] for r in stored if r["drifted"]} >= {"loans.income"}
    assert "loans.age" not in {r["column"] for r in stored if r["drifted"]}
    with (
        RegistryClient(api_server.url, api_server.token("viewer")) as viewer,
        pytest.raises(PermissionDenied),
    ):
        run_drift(viewer, "demo", "production", folder=capture_dir)
