"""The registry HTTP API over real HTTP: tokens and roles, status codes, OpenAPI, the client."""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from shipyard.errors import AuditBroken, InvalidSetting, NotFound, TamperedArtifact
from shipyard.registry import Registry
from shipyard.registry_http import OPERATIONS, RegistryClient, create_app

from ..conftest import ApiServer, serving

MODEL = "tumour_triage"
API = "/api/v1"


def _http(server: ApiServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url + API, headers=headers, timeout=30)


@pytest.fixture()
def demo(api_server: ApiServer, bundles: list[Path]) -> ApiServer:
    """Project demo with tumour_triage v1 in integration (made through the registry)."""
    registry = api_server.registry
    registry.create_project("demo")
    version = registry.register_model("demo", bundles[0])
    registry.tag("demo", MODEL, version.version_id)
    registry.add_component("demo", "integration", MODEL)
    return api_server


def _refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    # Every refusal has the same four fields, whichever layer refused the request.
    assert set(body) == {"error", "message", "details", "request_id"}, body
    assert body["error"] == error and body["message"] and body["request_id"]
    assert response.headers["X-Request-ID"] == body["request_id"]
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    return body


def test_health_and_openapi_need_no_token_and_the_document_is_valid(api_server) -> None:
    with httpx.Client(base_url=api_server.url) as http:
        assert http.get("/health").json() == {"status": "ok"}
        document = http.get("/openapi.json").json()
    validate(document)
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    for op in OPERATIONS:
        assert operations[op.name] == (op.method, API + op.path)
    promote = document["paths"][API + "/projects/{project}/environments/{env}/promote"]["post"]
    assert promote["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Revision"
    }


def test_tokens_and_roles(demo: ApiServer) -> None:
    promote = "/projects/demo/environments/integration/promote"
    with _http(demo) as http:
        body = _refused(http.post(promote), 401, "PermissionDenied")
        assert http.post(promote).headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in body["message"]
    forged = "shy_1_" + "x" * 43
    with _http(demo, forged) as http:
        body = _refused(http.post(promote), 401, "PermissionDenied")
        assert forged not in body["message"]
    with _http(demo, demo.token("viewer")) as http:
        assert http.get("/projects/demo/environments/uat/status").status_code == 200
        body = _refused(http.post(promote), 403, "PermissionDenied")
        assert body["message"] == "token 'viewer' has role viewer; promote needs deployer"
    with _http(demo, demo.token("deployer")) as http:
        response = http.post(promote)
        assert response.status_code == 200, response.text
        assert (response.json()["environment"], response.json()["actor"]) == ("uat", "deployer")
        _refused(http.post("/projects", json={"name": "other"}), 403, "PermissionDenied")
    revoked = demo.token("admin", name="leaver")
    demo.registry.revoke_token(int(revoked.split("_")[1]))
    with _http(demo, revoked) as http:
        _refused(http.get("/projects"), 401, "PermissionDenied")


def test_status_codes_follow_the_error(demo: ApiServer) -> None:
    with _http(demo, demo.token("admin")) as http:
        body = _refused(http.get("/projects/nope/environments"), 404, "NotFound")
        assert body["message"] == "project 'nope' does not exist (projects: demo)"
        _refused(http.post("/projects", json={"name": "demo"}), 409, "Conflict")
        body = _refused(
            http.put(
                "/settings/replicas",
                json={"value": "zero", "project": "demo", "env": "uat"},
            ),
            422,
            "InvalidSetting",
        )
        assert body["details"] == {"key": "replicas", "reason": body["details"]["reason"]}
        body = _refused(
            http.post("/projects/demo/environments/uat/rollback", json={"to": "two"}),
            422,
            "InvalidInput",
        )
        assert body["message"] == "parameter 'to' must be a whole number"
        body = _refused(
            http.post("/projects", json={"name": "x", "colour": 1}), 422, "InvalidInput"
        )
        assert "unknown parameter 'colour'" in body["message"]
        _refused(http.post("/projects", json={}), 422, "InvalidInput")
        _refused(
            http.post(
                "/projects", content=b'{"name": ', headers={"Content-Type": "application/json"}
            ),
            400,
            "MalformedJSON",
        )
        _refused(http.post("/projects", json=["demo"]), 400, "MalformedJSON")
        _refused(http.get("/no/such/route"), 404, "HTTPError")
        not_allowed = http.patch("/projects")
        _refused(not_allowed, 405, "HTTPError")
        assert set(not_allowed.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        assert http.head("/projects").status_code == 405  # only what the document lists
        deleted = http.delete("/projects/demo/environments/uat")
        body = _refused(deleted, 409, "Conflict")
        assert "integration (promotes to it)" in body["message"]


def _nested(depth: int) -> list[Any]:
    """``[[[…]]]``, ``depth`` lists deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# What an attack run sent, each once a 500 on PostgreSQL (which holds no id past 2**31 - 1,
# no LIMIT past a BIGINT, no NUL in text) or on both backends (a value nested too deeply).
_REFUSED = [
    ("GET", "/audit?limit=9223372036854775807", None, "limit"),
    ("GET", "/audit?limit=-1", None, "limit"),
    ("DELETE", "/tokens/2147483648", None, "token_id"),
    ("DELETE", "/tokens/" + "9" * 30, None, "token_id"),
    ("GET", "/projects/demo/environments/uat/revisions/9223372036854775807", None, "number"),
    ("GET", "/batch-jobs/" + "9" * 5000, None, "job_id"),
    ("POST", "/batch-jobs/2147483648/cancel", None, "job_id"),
    (
        "POST",
        "/batch-jobs/9/heartbeat",
        {"worker": "w", "rows_done": 2**63, "rows_rejected": 0},
        "rows_done",
    ),
    ("DELETE", "/projects/demo/environments/uat/api-keys/2147483648", None, "key_id"),
    ("GET", "/projects/de%00mo", None, "name"),
    ("GET", "/audit?object_prefix=project%00", None, "object_prefix"),
    ("GET", "/settings/replicas?project=de%00mo", None, "project"),
    ("POST", "/batch-jobs/claim", {"worker": "w\x00"}, "worker"),
    ("POST", "/batch-jobs/recover", {"stale_after": 1e308}, "stale_after"),
    ("GET", "/projects/demo/diff?a=uat&b=uat@99999999999", None, "b"),
    ("PUT", "/projects/demo/environments/uat/config", {"config": {"a": _nested(40)}}, "config"),
]


def test_values_the_database_would_refuse_are_422s_that_name_the_parameter(
    api_server: ApiServer,
) -> None:
    api_server.registry.create_project("demo")
    with _http(api_server, api_server.token("admin")) as http:
        for method, path, body, name in _REFUSED:
            response = http.request(method, path, json=body)
            answer = _refused(response, 422, "InvalidInput")
            assert f"parameter '{name}' " in answer["message"], (path, answer)
        # An anchor no event can have, and a token whose id no row can have.
        anchors = '{"99999999999999999999": "' + "0" * 64 + '"}'
        verify = http.get("/audit/verify", params={"anchors": anchors})
        assert (
            "anchors must map event ids to hashes"
            in _refused(verify, 422, "InvalidInput")["message"]
        )
    with _http(api_server, "shy_99999999999_" + "x" * 43) as http:
        _refused(http.get("/projects"), 401, "PermissionDenied")


def _tampered(bundle: Path, folder: Path) -> Path:
    """A copy of ``bundle`` whose metadata.json was edited after signing."""
    tampered = folder / bundle.name
    with tarfile.open(bundle) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name.endswith("metadata.json") and data is not None:
                edited = data.read() + b"\n"
                member.size = len(edited)
                data = io.BytesIO(edited)
            target.addfile(member, data)
    return tampered


def test_a_bundle_is_uploaded_as_the_request_body(
    api_server: ApiServer, bundles: list[Path], tmp_path: Path
) -> None:
    api_server.registry.create_project("demo")
    with _http(api_server, api_server.token("deployer")) as http:
        response = http.post(
            "/projects/demo/models",
            content=bundles[1].read_bytes(),
            headers={"Content-Type": "application/gzip"},
        )
        assert response.status_code == 201, response.text
        assert (response.json()["model"], response.json()["bundle_version"]) == (MODEL, "1.1.0")
        _refused(http.post("/projects/demo/models"), 400, "MissingBody")
        tampered = _tampered(bundles[0], tmp_path).read_bytes()
        body = _refused(
            http.post("/projects/demo/models", content=tampered), 422, "TamperedArtifact"
        )
        assert "metadata.json" in body["message"]
    assert [v.version_id for v in api_server.registry.versions("demo", MODEL)] == [1]


def test_a_store_that_refuses_writes_is_a_503_that_names_it(
    engine: Any, tmp_path: Path, bundles: list[Path]
) -> None:
    from shipyard.registry import LocalStore

    from ..registry.test_store import read_only_folder

    folder = read_only_folder(tmp_path)
    registry = Registry(engine, LocalStore(folder), actor="server")
    registry.create_project("demo")
    token = registry.create_token("ci", "deployer")[1]
    with (
        serving(create_app(lambda: registry)) as url,
        httpx.Client(base_url=url + API, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        response = http.post("/projects/demo/models", content=bundles[0].read_bytes())
    body = _refused(response, 503, "StoreReadOnly")
    assert body["message"].startswith(f"artifact store '{folder}' is read-only: ")
    assert body["message"].endswith("; nothing was stored")
    assert registry.list_models("demo") == []


def test_the_client_raises_what_the_registry_raised(
    demo: ApiServer, bundles: list[Path], database_url: str, tmp_path: Path
) -> None:
    with RegistryClient(demo.url, demo.token("admin")) as client:
        with pytest.raises(NotFound, match=r"^project 'nope' does not exist \(projects: demo\)$"):
            client.status("nope", "uat")
        with pytest.raises(InvalidSetting) as refused:
            client.set_setting("replicas", 0, project="demo")
        assert (refused.value.key, refused.value.exit_code) == ("replicas", 2)
        with pytest.raises(TamperedArtifact, match="metadata.json"):
            client.register_model("demo", _tampered(bundles[1], tmp_path))
        assert client.promote("demo", "integration")["environment"] == "uat"
        assert client.audit_verify()["ok"] is True
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM audit_events WHERE id = 3"))
        engine.dispose()
        with pytest.raises(AuditBroken) as broken_chain:
            client.audit_verify()
        assert broken_chain.value.event_id == 3
        assert client.audit_verify(raise_error=False)["broken_event"] == 3


class _Failing(Registry):
    def with_actor(self, actor: str, role: str | None = None) -> Registry:
        return self

    def list_projects(self) -> Any:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")


def test_a_crash_is_a_500_with_a_request_id_and_no_traceback(
    engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from shipyard.registry import LocalStore

    registry = _Failing(engine, LocalStore(tmp_path / "artifacts"), actor="server")
    token = registry.create_token("admin", "admin")[1]
    with (
        caplog.at_level(logging.ERROR, logger="shipyard.registry_http"),
        serving(create_app(lambda: registry)) as url,
        httpx.Client(base_url=url + API, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        response = http.get("/projects")
    body = response.json()
    assert response.status_code == 500
    assert set(body) == {"error", "message", "request_id"}
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert body["request_id"] in caplog.text and "hunter2" in caplog.text


def test_the_docs_list_every_route() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "registry.md").read_text()
    for op in OPERATIONS:
        assert f"| `{op.method} {op.path}` | `{op.name}` | {op.role} |" in docs, op.name
