"""``shipyard.client`` against a real ``shipyard serve`` on loopback: predictions, the
errors an app sees (named model, status, reason, never the key), and where the context
comes from (a bound one, else the environment variables)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from shipyard import client
from shipyard.client import AppContext, ClientError
from shipyard.runtime import Artifact
from tests.conftest import serving
from tests.serving.conftest import serve_process

KEY = "sya_1_client-test-key-do-not-show"
VARIABLES = (
    "SHIPYARD_PROJECT",
    "SHIPYARD_ENV",
    "SHIPYARD_APP_NAME",
    "SHIPYARD_SERVING_URL",
    "SHIPYARD_API_KEY",
    "SHIPYARD_APP_CONFIG",
    "SHIPYARD_ENVIRONMENT_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def model_server(signed_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``shipyard serve --bundle`` of the tumour model, with one API key: its base URL."""
    keys = tmp_path_factory.mktemp("client-keys") / "api-keys"
    keys.write_text(KEY + "\n")
    args = ["--bundle", str(signed_bundle), "--api-key-file", str(keys)]
    with serve_process(args) as (url, _process):
        yield url


def records(reference: dict[str, Any], count: int) -> list[dict[str, float]]:
    columns = reference["tumours"]
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def served(url: str, key: str | None = KEY) -> AppContext:
    """The context of an app next to the model server (``shipyard serve --bundle`` serves
    project and environment 'local')."""
    return AppContext("local", "local", "web", url, key)


def test_predict_returns_one_record_per_row_as_the_bundle_computes_it(
    model_server: str, signed_bundle: Path, demo_reference: dict[str, Any]
) -> None:
    rows = records(demo_reference, 3)
    with client.bind(served(model_server)):
        answers = client.predict("tumour_triage", rows)
    expected = Artifact(signed_bundle).run({"tumours": rows})
    assert [a["decision"] for a in answers] == expected["decision"]["values"]
    for answer, p in zip(answers, expected["p_malignant"]["values"], strict=True):
        assert math.isclose(answer["p_malignant"], p, rel_tol=1e-9)


def test_predict_reads_the_environment_variables_a_deployment_sets(
    model_server: str, demo_reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "SHIPYARD_SERVING_URL": model_server + "/",
        "SHIPYARD_PROJECT": "local",
        "SHIPYARD_ENV": "local",
        "SHIPYARD_API_KEY": KEY,
    }.items():
        monkeypatch.setenv(name, value)
    assert len(client.predict("tumour_triage", records(demo_reference, 2))) == 2


def test_numpy_values_and_nan_are_sent_as_json(
    model_server: str, demo_reference: dict[str, Any]
) -> None:
    [row] = records(demo_reference, 1)
    numpy_row = {name: np.float64(value) for name, value in row.items()}
    with client.bind(served(model_server)):
        [from_numpy] = client.predict("tumour_triage", [numpy_row])
        [plain] = client.predict("tumour_triage", [row])
        assert from_numpy == plain
        # NaN is a missing value: the model's columns are not nullable, so the server says so.
        with pytest.raises(ClientError, match="mean_radius") as raised:
            client.predict("tumour_triage", [{**row, "mean_radius": float("nan")}])
    assert raised.value.status == 422


def test_an_unknown_model_is_a_client_error_naming_it_and_what_is_served(
    model_server: str, demo_reference: dict[str, Any]
) -> None:
    with client.bind(served(model_server)), pytest.raises(ClientError) as raised:
        client.predict("no_such_model", records(demo_reference, 1))
    error = raised.value
    assert error.status == 404 and error.model == "no_such_model" and error.kind == "NotFound"
    assert "'no_such_model'" in str(error) and "tumour_triage" in str(error)


def test_a_wrong_or_missing_key_is_a_401_that_never_shows_the_key(
    model_server: str, demo_reference: dict[str, Any]
) -> None:
    wrong = "sya_9_wrong-key-which-must-stay-secret"
    rows = records(demo_reference, 1)
    with client.bind(served(model_server, wrong)), pytest.raises(ClientError) as raised:
        client.predict("tumour_triage", rows)
    error = raised.value
    assert error.status == 401 and "tumour_triage" in str(error)
    assert "refused" in str(error)
    shown = f"{error} {error!r} {error.args} {served(model_server, wrong)!r}"
    assert wrong not in shown and "wrong-key" not in shown
    with client.bind(served(model_server, None)), pytest.raises(ClientError) as raised:
        client.predict("tumour_triage", rows)
    assert raised.value.status == 401 and "SHIPYARD_API_KEY" in str(raised.value)


def test_rows_that_break_the_schema_are_a_422_naming_the_column(
    model_server: str, demo_reference: dict[str, Any]
) -> None:
    [row] = records(demo_reference, 1)
    with client.bind(served(model_server)), pytest.raises(ClientError) as raised:
        client.predict("tumour_triage", [{**row, "mean_area": -5.0}])
    assert raised.value.status == 422 and "mean_area" in str(raised.value)


def test_rows_must_be_records() -> None:
    with client.bind(served("http://127.0.0.1:9")):
        for wrong in ({"mean_radius": [1.0]}, "rows", [[1.0, 2.0]]):
            with pytest.raises(ClientError, match="record"):
                client.predict("tumour_triage", wrong)  # type: ignore[arg-type]
        assert client.predict("tumour_triage", []) == []  # nothing to send


def test_an_unreachable_server_is_a_client_error_without_a_status() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f"http://user:password@127.0.0.1:{port}"
    with client.bind(served(url)), pytest.raises(ClientError, match="cannot reach") as raised:
        client.predict("tumour_triage", [{"mean_radius": 1.0}])
    assert raised.value.status is None
    assert "password" not in str(raised.value) and f"127.0.0.1:{port}" in str(raised.value)


def test_missing_settings_name_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClientError, match="SHIPYARD_SERVING_URL"):
        client.predict("tumour_triage", [{"x": 1}])
    monkeypatch.setenv("SHIPYARD_SERVING_URL", "http://127.0.0.1:9")
    with pytest.raises(ClientError, match="SHIPYARD_PROJECT"):
        client.predict("tumour_triage", [{"x": 1}])
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    with pytest.raises(ClientError, match="SHIPYARD_ENV"):
        client.predict("tumour_triage", [{"x": 1}])
    monkeypatch.setenv("SHIPYARD_ENV", "production")
    monkeypatch.setenv("SHIPYARD_SERVING_URL", "file:///etc/passwd")
    with pytest.raises(ClientError, match="http:// or https://"):
        client.predict("tumour_triage", [{"x": 1}])


class Recorder:
    """A loopback server that redirects /api/... to /landed, and counts what reaches it."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str | None]] = []

        async def anything(request: Request) -> Response:
            self.hits.append((request.url.path, request.headers.get("authorization")))
            if request.url.path.startswith("/api/"):
                return RedirectResponse("/landed", status_code=307)
            return JSONResponse({"predictions": []})

        self.app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


def test_a_redirect_is_not_followed_so_the_key_stays_where_it_was_sent() -> None:
    recorder = Recorder()
    with (
        serving(recorder.app) as url,
        client.bind(served(url)),
        pytest.raises(ClientError, match="follows no redirect") as raised,
    ):
        client.predict("tumour_triage", [{"x": 1.0}])
    assert raised.value.status == 307
    assert [path for path, _ in recorder.hits] == [
        "/api/v1/projects/local/environments/local/models/tumour_triage/predict"
    ]


def test_proxy_variables_are_ignored(
    model_server: str, demo_reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = Recorder()
    with serving(proxy.app) as proxy_url:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with client.bind(served(model_server)):
            assert len(client.predict("tumour_triage", records(demo_reference, 1))) == 1
    assert proxy.hits == []


def test_the_context_comes_from_the_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert client.context() == AppContext()
    assert client.app_config() == {} and client.environment_config() == {}
    for name, value in {
        "SHIPYARD_PROJECT": "demo",
        "SHIPYARD_ENV": "uat",
        "SHIPYARD_APP_NAME": "triage_web",
        "SHIPYARD_SERVING_URL": "http://models:8000",
        "SHIPYARD_API_KEY": KEY,
        "SHIPYARD_APP_CONFIG": json.dumps({"threshold": 0.3, "labels": ["a"]}),
        "SHIPYARD_ENVIRONMENT_CONFIG": '{"reports": "s3://bucket/uat"}',
    }.items():
        monkeypatch.setenv(name, value)
    found = client.context()
    assert (found.project, found.environment, found.app) == ("demo", "uat", "triage_web")
    assert found.serving_url == "http://models:8000" and found.api_key == KEY
    assert KEY not in repr(found)
    config = client.app_config()
    assert config == {"threshold": 0.3, "labels": ["a"]}
    config["labels"].append("changed")  # a copy: the next call is unchanged
    assert client.app_config()["labels"] == ["a"]
    assert client.environment_config() == {"reports": "s3://bucket/uat"}


def test_a_config_variable_that_is_not_a_json_object_is_named_but_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_APP_CONFIG", '{"password": "hunter2"')
    with pytest.raises(ClientError, match="SHIPYARD_APP_CONFIG is not valid JSON") as raised:
        client.app_config()
    assert "hunter2" not in str(raised.value)
    monkeypatch.setenv("SHIPYARD_APP_CONFIG", "{}")
    monkeypatch.setenv("SHIPYARD_ENVIRONMENT_CONFIG", "[1, 2]")
    with pytest.raises(ClientError, match="SHIPYARD_ENVIRONMENT_CONFIG must be a JSON object"):
        client.environment_config()


def test_a_bound_context_wins_until_it_is_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_APP_CONFIG", '{"threshold": 0.9}')
    monkeypatch.setenv("SHIPYARD_PROJECT", "from-variables")
    bound = AppContext("demo", "production", "web", "http://x", None, {"threshold": 0.1}, {"a": 1})
    with client.bind(bound) as inside:
        assert inside is bound and client.context() is bound
        assert client.app_config() == {"threshold": 0.1}
        assert client.environment_config() == {"a": 1}
        nested = AppContext("other", "uat", app_config={"threshold": 0.5})
        binding = client.bind(nested)
        assert client.app_config() == {"threshold": 0.5}
        binding.reset()
        binding.reset()  # twice is harmless
        assert client.context() is bound
    assert client.context().project == "from-variables"
    assert client.app_config() == {"threshold": 0.9}
    with pytest.raises(TypeError, match="AppContext"):
        client.bind({"project": "demo"})  # type: ignore[arg-type]


def test_a_binding_belongs_to_its_task_and_reaches_its_threads() -> None:
    seen: dict[str, str | None] = {}

    async def request(name: str, started: asyncio.Event, other: asyncio.Event) -> None:
        with client.bind(AppContext(project=name)):
            started.set()
            await other.wait()  # both requests are bound at once
            seen[name] = client.context().project
            found: list[str | None] = []
            await asyncio.to_thread(lambda: found.append(client.context().project))
            seen[f"{name} thread"] = found[0]

    async def main() -> None:
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(request("a", a, b), request("b", b, a))

    asyncio.run(main())
    assert seen == {"a": "a", "b": "b", "a thread": "a", "b thread": "b"}
    assert client.context().project is None
    found: list[str | None] = []
    with client.bind(AppContext(project="bound")):
        plain = threading.Thread(target=lambda: found.append(client.context().project))
        plain.start()
        plain.join()
    assert found == [None]  # a thread started by hand starts with an empty context


def test_the_client_imports_nothing_but_the_standard_library() -> None:
    probe = (
        "import sys; import shipyard.client; "
        "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'starlette', 'httpx', 'orjson', 'sqlalchemy', 'yaml', 'typer'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_client_surface() -> None:
    assert client.__all__ == [
        "AppContext",
        "Binding",
        "ClientError",
        "app_config",
        "bind",
        "context",
        "environment_config",
        "predict",
    ]
