"""Apps served beside their models: ``shipyard serve --project --env`` mounts each app
component under /apps/NAME/, verified like a model bundle, with its client context bound.

The apps are real Starlette apps written by the test (tests/serving/_apps.py), bundled,
signed and registered; the server is what ``shipyard serve`` runs, on loopback, following
a registry on each backend. The app calls the model of its environment over HTTP.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shipyard.apps import build_app_bundle
from shipyard.errors import AppError, TamperedArtifact
from shipyard.registry import Registry
from shipyard.serving import (
    ComponentLogs,
    ServeOptions,
    ServingApp,
    build_app,
    bundle_table,
    read_log,
)

from ..registry.conftest import MODEL
from ._apps import app_bundle
from ._hold import wait_until
from .conftest import guarded_server, predict_path, serve_process

ENV = "production"
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
THRESHOLD = {"threshold": 0.3}


def records(rows: dict[str, Any], count: int = 2) -> list[dict[str, Any]]:
    """The first ``count`` rows of a dict dataset's one table, as records."""
    (table,) = rows.values()
    return [{name: values[i] for name, values in table.items()} for i in range(count)]


def add_app(registry: Registry, bundle: Path, app_config: dict[str, Any] | None = None) -> str:
    """Register ``bundle``, tag it, deploy it into production; returns its tag."""
    version = registry.register_app("demo", bundle, app_config)
    tagged = registry.tag("demo", version.model, version.version_id)
    registry.add_component("demo", ENV, version.model, tagged.tag)
    return str(tagged.tag)


@pytest.fixture()
def environment(demo: Registry, tmp_path: Path, key_pair: tuple[Path, Path]) -> Registry:
    """Production of 'demo' holding tumour_triage v1 and two apps both written as package
    ``app`` (ui, with app config; other), with an API key and an environment config."""
    key = key_pair[0]
    demo.add_component("demo", ENV, MODEL, "v1")
    add_app(demo, app_bundle(tmp_path / "src" / "ui", tmp_path / "dist", key, name="ui"), THRESHOLD)
    add_app(demo, app_bundle(tmp_path / "src" / "other", tmp_path / "dist", key, name="other"))
    demo.set_environment_config("demo", ENV, {"reports": "s3://reports/demo"})
    return demo


@pytest.fixture()
def api_key_demo(demo: Registry) -> str:
    """An API key of demo's production."""
    return demo.create_api_key("demo", ENV, "gateway")[1]


@pytest.fixture()
def api_key(environment: Registry) -> str:
    """An API key of production: the model routes now need one."""
    return environment.create_api_key("demo", ENV, "gateway")[1]


def serve(registry: Registry, log_dir: Path, poll_ms: int = 1000) -> ServingApp:
    options = ServeOptions(project="demo", environment=ENV, log_dir=str(log_dir), poll_ms=poll_ms)
    return build_app(options, registry)


@pytest.fixture()
def served(environment: Registry, api_key: str, tmp_path: Path) -> Iterator[str]:
    """What ``shipyard serve --project demo --env production`` serves: its base URL."""
    with guarded_server(serve(environment, tmp_path / "logs")) as base:
        yield base


def test_each_app_answers_under_its_own_path_beside_the_models(served: str) -> None:
    ui = httpx.get(f"{served}/apps/ui/health")
    other = httpx.get(f"{served}/apps/other/health")
    assert ui.status_code == 200 and ui.json() == {"status": "ok", "label": "ui", "app": "ui"}
    # Both apps name their package "app": each runs its own.
    assert other.status_code == 200 and other.json()["label"] == "other"
    health = httpx.get(f"{served}/health").json()
    assert health["apps"] == {"ui": "v1", "other": "v1"} and health["models"] == {MODEL: ["v1"]}


def test_an_app_predicts_with_the_model_of_its_environment(
    served: str, api_key: str, demo_rows: dict[str, Any]
) -> None:
    rows = records(demo_rows)
    through_app = httpx.post(f"{served}/apps/ui/predict", json=rows, timeout=30)
    assert through_app.status_code == 200, through_app.text
    direct = httpx.post(
        served + predict_path(MODEL, "demo", ENV),
        json={"dataframe_records": rows},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert direct.status_code == 200
    assert through_app.json()["answers"] == direct.json()["predictions"]
    # The model routes still refuse a caller without a key: the apps' key is the server's own.
    refused = httpx.post(
        served + predict_path(MODEL, "demo", ENV), json={"dataframe_records": rows}
    )
    assert refused.status_code == 401


def test_an_app_reads_its_version_app_config_and_the_environment_config(served: str) -> None:
    ui = httpx.get(f"{served}/apps/ui/config").json()
    other = httpx.get(f"{served}/apps/other/config").json()
    assert ui == {"app": THRESHOLD, "environment": {"reports": "s3://reports/demo"}}
    assert other["app"] == {}


def test_what_an_app_logs_and_its_failures_go_to_its_component_log(
    served: str, tmp_path: Path, demo_rows: dict[str, Any]
) -> None:
    assert httpx.post(f"{served}/apps/ui/predict", json=records(demo_rows)).status_code == 200
    failed = httpx.get(f"{served}/apps/ui/fail")
    assert failed.status_code == 500
    request_id = failed.headers["x-request-id"]
    assert "the app broke" not in failed.text  # the traceback stays in the log
    logs = tmp_path / "logs"
    # The server writes the failure as the app's call ends, after Starlette sent its 500.
    wait_until(
        lambda: "RuntimeError: the app broke on purpose" in "\n".join(read_log(logs, "ui")),
        "the failure is in ui's log",
    )
    lines = read_log(logs, "ui")
    assert any(f"INFO app.main: scored 2 rows with {MODEL}" in line for line in lines)
    assert any(f"GET /apps/ui/fail failed (request {request_id})" in line for line in lines)
    assert not (logs / "other.log").exists()  # the other app logged nothing


def test_an_unknown_app_is_a_404_naming_the_apps_and_its_root_redirects(served: str) -> None:
    missing = httpx.get(f"{served}/apps/nope/health")
    assert missing.status_code == 404
    assert "no app 'nope' here (apps: other, ui)" in missing.json()["message"]
    root = httpx.get(f"{served}/apps/ui?x=1")
    assert root.status_code == 307 and root.headers["location"] == "/apps/ui/?x=1"


def test_a_new_app_version_is_swapped_in_and_a_broken_one_keeps_the_old(
    environment: Registry, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    app = serve(environment, tmp_path / "logs", poll_ms=10)
    with guarded_server(app) as base:
        newer = app_bundle(
            tmp_path / "src" / "ui2",
            tmp_path / "dist",
            key_pair[0],
            name="ui",
            version="0.2.0",
            label="ui two",
        )
        add_app(environment, newer)
        wait_until(
            lambda: httpx.get(f"{base}/apps/ui/health").json()["label"] == "ui two",
            "the new version of ui is served",
        )
        broken = app_bundle(
            tmp_path / "src" / "ui3",
            tmp_path / "dist",
            key_pair[0],
            name="ui",
            version="0.3.0",
            init_extra="raise ImportError('a library this version needs is missing')\n",
        )
        add_app(environment, broken)
        wait_until(lambda: app.not_loaded is not None, "the broken version is refused")
        assert "app ui v3" in app.not_loaded["reason"]  # type: ignore[index]
        assert httpx.get(f"{base}/apps/ui/health").json()["label"] == "ui two"
    assert "a library this version needs is missing" in "\n".join(read_log(tmp_path / "logs", "ui"))


def test_a_server_whose_app_does_not_import_refuses_to_start_naming_it(
    environment: Registry, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    broken = app_bundle(
        tmp_path / "src" / "bad",
        tmp_path / "dist",
        key_pair[0],
        name="ui",
        version="0.9.0",
        main="from app.nowhere import nothing\n",
    )
    add_app(environment, broken)
    with pytest.raises(AppError) as refused:
        serve(environment, tmp_path / "logs")
    assert str(refused.value) == (
        "app ui v2: importing its entry app.main:app failed: "
        "ModuleNotFoundError: No module named 'app.nowhere'"
    )


PAYLOAD = "\nimport os as _os\nopen({marker!r}, 'w').write('the app ran')\n"


def tamper(bundle: Path, marker: Path, out: Path) -> Path:
    """``bundle`` with a payload added to app/main.py and its manifest left as it was."""
    with tarfile.open(bundle, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("/app/app/main.py"):
                data = data + PAYLOAD.format(marker=str(marker)).encode()  # type: ignore[operator]
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_a_tampered_app_bundle_in_the_store_is_refused_before_its_code_runs(
    environment: Registry, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    marker = tmp_path / "ran"
    good = app_bundle(
        tmp_path / "src" / "evil", tmp_path / "dist", key_pair[0], name="ui", version="0.5.0"
    )
    tag = add_app(environment, good)
    # Someone who can write the store and the database swaps in another bundle and its digest.
    bad = tamper(good, marker, tmp_path / "ui-0.5.0.tar.gz")
    digest = environment.store.put(bad)
    with environment.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE component_versions SET digest = :new WHERE digest = :old"),
            {"new": digest, "old": environment.get_version("demo", "ui", tag).digest},
        )
    with pytest.raises(TamperedArtifact, match=r"app ui v\d+: .*app/main\.py"):
        serve(environment, tmp_path / "logs")
    assert not marker.exists()  # refused before anything of the bundle was imported


def test_shipyard_serve_serves_the_apps_and_component_logs_prints_what_one_logged(
    environment: Registry,
    api_key: str,
    database_url: str,
    tmp_path: Path,
    demo_rows: dict[str, Any],
) -> None:
    """The command itself, with two worker processes: an app's call to the models may be
    answered by either, and each accepts the key the apps hold (one for both)."""
    home = tmp_path / "home"
    env = {
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),  # the demo fixture's store
    }
    shipyard = [SHIPYARD, "component", "logs", "ui", "--project", "demo", "--env", ENV]
    before = subprocess.run(shipyard, env={**os.environ, **env}, capture_output=True, text=True)
    assert before.returncode != 0
    assert f"component ui has no log at {home / 'logs' / 'demo' / ENV / 'ui.log'}" in before.stderr
    serving = ["--project", "demo", "--env", ENV, "--workers", "2"]
    with serve_process(serving, env, output=(tmp_path / "serve.log").open("w")) as (base, _):
        for _ in range(8):
            answer = httpx.post(f"{base}/apps/ui/predict", json=records(demo_rows), timeout=30)
            assert answer.status_code == 200, answer.text
    shown = subprocess.run(
        [*shipyard, "--tail", "1"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().endswith(f"INFO app.main: scored 2 rows with {MODEL}")
    every = subprocess.run(shipyard, env={**os.environ, **env}, capture_output=True, text=True)
    assert every.stdout.count("scored 2 rows") == 8  # both workers write the one file
    assert api_key not in (tmp_path / "serve.log").read_text()


def test_the_web_template_runs_under_serve_as_scaffolded(
    demo: Registry,
    api_key_demo: str,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    demo_rows: dict[str, Any],
) -> None:
    """``shipyard app create --template web``'s app, registered as it is, served with its model."""
    from shipyard.app_templates import CreateOptions, create_app

    folder = tmp_path / "triage_web"
    create_app(CreateOptions("triage_web", "web", folder, (MODEL,), "demo"))
    bundle = build_app_bundle(folder, tmp_path / "dist", sign_key=key_pair[0])
    demo.add_component("demo", ENV, MODEL, "v1")
    add_app(demo, bundle)
    with guarded_server(serve(demo, tmp_path / "logs")) as base:
        app = f"{base}/apps/triage_web"
        assert httpx.get(f"{app}/health").json()["app"] == "triage_web"
        rows = records(demo_rows)
        refused = httpx.post(f"{app}/predict", json={"rows": rows})
        assert refused.status_code == 401  # the template's /predict needs a key
        answer = httpx.post(
            f"{app}/predict", json={"rows": rows}, headers={"X-API-Key": api_key_demo}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        direct = httpx.post(
            base + predict_path(MODEL, "demo", ENV),
            json={"dataframe_records": rows},
            headers={"X-API-Key": api_key_demo},
        )
        assert answer.json() == {"model": MODEL, "predictions": direct.json()["predictions"]}
        page = httpx.get(f"{app}/", timeout=30)  # its form, built from the served schema
        assert page.status_code == 200 and "mean_radius" in page.text


def test_a_models_failed_request_goes_to_its_component_log(
    toy_runners: dict[str, Any], tmp_path: Path
) -> None:
    logs = ComponentLogs(tmp_path / "logs")
    app = ServingApp(bundle_table([toy_runners["fragile"]]), logs=logs)
    with guarded_server(app) as base:
        failed = httpx.post(base + predict_path("fragile"), json={"t": {"x": [666.0]}})
        assert failed.status_code == 500
        request_id = failed.headers["x-request-id"]
        assert "secret internal detail" not in failed.text
    text = "\n".join(read_log(tmp_path / "logs", "fragile"))
    assert f"fragile 1.0.0: predict request {request_id} failed" in text
    assert "secret internal detail" in text  # the traceback, for whoever reads the log
