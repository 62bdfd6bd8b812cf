"""A served version's code reads its app config: change the app config, the answer changes.

``shipyard serve --project --env`` of a model whose rule reads its threshold from app
config (``sy.rule(app_config=[...])``), driven through the CLI as a user drives it: the
version registered with a default app config, then deployed again with another one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.cli import main
from shipyard.registry import Registry
from shipyard.serving import EnvironmentLoader
from tests._app_config import threshold_bundle

from ._hold import wait_until
from .conftest import predict_path, serve_process

PREDICT = predict_path("gate", "demo", "production")
BODY = {"items": {"x": [0.3, 0.7, 0.95]}}


def cli(*args: str) -> None:
    """Run ``shipyard ARGS``; fail unless it exits 0."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code in (0, None)


def test_serving_an_environment_answers_with_the_app_config_each_revision_gives(
    registry: Registry,
    database_url: str,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = {
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    bundle = threshold_bundle(tmp_path / "dist", key_pair[0])
    strict, lenient = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    strict.write_text("threshold: 0.9\n")
    lenient.write_text("threshold: 0.6\n")
    cli("project", "create", "demo")
    cli("model", "register", str(bundle), "--project", "demo", "--app-config", str(strict))
    (version,) = registry.versions("demo", "gate")
    cli("model", "tag", "gate", str(version.version_id), "--project", "demo")
    cli("component", "add", "gate", "--env", "production", "--project", "demo")  # its own: 0.9
    args = ["--project", "demo", "--env", "production", "--poll-ms", "100"]
    with serve_process(args, environment) as (base, _), httpx.Client(base_url=base) as client:

        def flags() -> list[str]:
            answer = client.post(PREDICT, json=BODY)
            assert answer.status_code == 200, answer.text
            return list(answer.json()["flag"]["values"])

        assert flags() == ["low", "low", "high"]
        cli(
            "component",
            "add",
            "gate",
            "--version",
            "v1",
            "--env",
            "production",
            "--project",
            "demo",
            "--app-config",
            str(lenient),
        )
        wait_until(lambda: flags() == ["low", "high", "high"], "the new app config served")
        assert client.get("/health").json()["revision"] == 3


def test_each_version_of_a_split_answers_with_its_own_app_config(
    registry: Registry, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    registry.create_project("demo")
    for version, threshold in (("1.0.0", 0.9), ("1.0.1", 0.2)):
        bundle = threshold_bundle(tmp_path / version, key_pair[0], version)
        found = registry.register_model("demo", bundle, app_config={"threshold": threshold})
        registry.tag("demo", "gate", found.version_id)
    registry.add_component("demo", "production", "gate", "v1", app_config={"threshold": 0.6})
    weights = {"weights": {"v1": 50, "v2": 50}}
    registry.set_setting("traffic", weights, "demo", "production", "gate")
    loader = EnvironmentLoader(registry, "demo", "production")
    route = loader.load().models["gate"]
    answers = {r.version: r.executor.run_dict(BODY)["flag"]["values"] for r in route.live}
    # v1 with the app config production gave it; v2 with its own (it was not deployed with any)
    assert answers == {"v1": ["low", "high", "high"], "v2": ["high", "high", "high"]}
    registry.add_component("demo", "production", "gate", "v1", app_config={"threshold": 0.99})
    again = loader.load().models["gate"]
    v1 = next(r for r in again.live if r.version == "v1")
    assert v1.executor.run_dict(BODY)["flag"]["values"] == ["low", "low", "low"]
    old = next(r for r in route.live if r.version == "v1")
    assert old.executor.run_dict(BODY)["flag"]["values"] == ["low", "high", "high"]  # in flight
