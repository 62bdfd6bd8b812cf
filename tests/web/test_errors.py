"""One map from the error tree to HTTP statuses and bodies: what every server answers."""

from __future__ import annotations

import logging

import orjson
import pytest

import shipyard.errors
from shipyard.errors import (
    ClientGone,
    EndpointError,
    HttpError,
    InvalidSetting,
    ModelError,
    NotFound,
    OutOfRange,
    ShipyardError,
    StoreError,
)
from shipyard.web import error_body, error_headers, error_response, http_error, http_status

log = logging.getLogger("tests.web")


def _tree() -> list[type[ShipyardError]]:
    """Every class of the tree a server maps by class (HttpError carries its own status)."""
    classes = [getattr(shipyard.errors, name) for name in shipyard.errors.__all__]
    return [
        c
        for c in classes
        if isinstance(c, type) and issubclass(c, ShipyardError) and not issubclass(c, HttpError)
    ]


def test_every_error_of_the_tree_has_one_status() -> None:
    expected_by_status = {
        400: "RegistryError UsageError",
        403: "PermissionDenied",
        404: "NotFound",
        409: "AuditBroken Conflict",
        # What the caller sent cannot be processed: a bundle, data, a name, a setting.
        422: "ShipyardError ArtifactError TamperedArtifact SignatureError IncompatibleArtifact "
        "SchemaError UnknownTable MissingColumn WrongType NullValue OutOfRange PipelineError "
        "GraphError CaptureError InvalidInput InvalidSetting InvalidComponentConfig",
        500: "ModelError AppError",
        502: "StoreError EndpointError",  # an upstream failed: the store, an llm endpoint
        503: "StoreReadOnly",  # the store refuses writes
        507: "StoreFull",  # Insufficient Storage
    }
    expected = {n: s for s, names in expected_by_status.items() for n in names.split()}
    tree = _tree()
    assert set(expected) <= {cls.__name__ for cls in tree}
    for cls in tree:
        # A class added to the tree later answers like its parent unless the table lists it.
        want = expected.get(cls.__name__, http_status(cls.__mro__[1]))
        assert http_status(cls) == want, cls.__name__


def test_a_new_subclass_takes_the_status_of_its_nearest_listed_class() -> None:
    class Gone(NotFound):
        pass

    assert http_status(Gone("x")) == 404
    assert http_status(RuntimeError("x")) == 500
    assert http_status(HttpError(418, "Teapot", "no")) == 418
    assert http_status(ClientGone()) == 499


def test_a_refusal_keeps_its_class_message_and_public_attributes() -> None:
    error = http_error(InvalidSetting("replicas", "must be a whole number"), "r1", log, "here")
    assert (error.status, error.kind) == (422, "InvalidSetting")
    assert str(error) == "setting 'replicas': must be a whole number"
    assert error.details == {"key": "replicas", "reason": "must be a whole number"}
    assert orjson.loads(error_body(error, "r1", "registry")) == {
        "error": "InvalidSetting",
        "message": "setting 'replicas': must be a whole number",
        "details": {"key": "replicas", "reason": "must be a whole number"},
        "request_id": "r1",
    }


def test_each_server_style_places_the_details_its_clients_read() -> None:
    error = http_error(OutOfRange("below 0", "t", "x", 2), "r2", log, "here")
    message = "table 't', column 'x', row 2: below 0"
    where = {"table": "t", "column": "x", "row": 2}
    assert orjson.loads(error_body(error, "r2", "predict")) == {
        "error": "OutOfRange",
        "message": message,
        **where,
        "request_id": "r2",
    }
    # The Open Inference Protocol's error is {"error": message}; the rest is extra.
    assert orjson.loads(error_body(error, "r2", "oip")) == {
        "error": message,
        "kind": "OutOfRange",
        **where,
        "request_id": "r2",
    }
    assert orjson.loads(error_body(error, "r2", "registry"))["details"] == where


def test_an_endpoint_failure_tells_the_client_the_node_and_the_log_the_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raised = EndpointError(
        "llm 'answer' failed: EndpointError: http://10.0.0.7:8000/v1/chat/completions "
        "answered 503: overloaded; 3 attempts",
        "answer",
        "answered 503 (3 attempts)",
    )
    with caplog.at_level(logging.WARNING, logger="tests.web"):
        error = http_error(raised, "req-9", log, "POST /predict")
    assert (error.status, error.kind) == (502, "EndpointError")
    assert str(error) == (
        "llm 'answer' failed: its language model endpoint answered 503 (3 attempts)"
    )
    assert error.details == {"node": "answer", "reason": "answered 503 (3 attempts)"}
    for style in ("registry", "predict", "oip"):
        assert b"10.0.0.7" not in error_body(error, "req-9", style)
    assert "10.0.0.7:8000" in caplog.text and "req-9" in caplog.text


@pytest.mark.parametrize(
    ("raised", "kind", "what"),
    [
        (RuntimeError("password=hunter2"), "InternalError", "internal error"),
        (ModelError("node 'score' failed: password=hunter2"), "ModelError", "the model failed"),
    ],
)
def test_a_500_names_only_the_request_id_and_the_log_holds_the_traceback(
    raised: Exception, kind: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise raised
    except Exception as exc:
        with caplog.at_level(logging.ERROR, logger="tests.web"):
            error = http_error(exc, "req-7", log, "POST /somewhere")
    assert (error.status, error.kind) == (500, kind)
    assert str(error) == f"{what}; the server log has the details (request req-7)"
    for style in ("registry", "predict", "oip"):
        body = error_body(error, "req-7", style)  # type: ignore[arg-type]
        assert b"hunter2" not in body and b"Traceback" not in body
    assert set(orjson.loads(error_body(error, "req-7", "registry"))) == {
        "error",
        "message",
        "request_id",
    }
    (record,) = [r for r in caplog.records if "req-7" in r.getMessage()]
    assert "POST /somewhere" in record.getMessage()
    assert record.exc_info is not None and "hunter2" in caplog.text


def test_a_refusal_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tests.web"):
        http_error(NotFound("no project 'x'"), "r3", log, "here")
        http_error(StoreError("blob abc is missing"), "r3", log, "here")
    assert caplog.records == []


def test_a_401_challenges_for_a_bearer_token_and_every_error_names_its_request() -> None:
    unauthorized = HttpError(401, "Unauthorized", "send a key")
    assert error_headers(unauthorized, "r4") == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"r4"),
        (b"www-authenticate", b"Bearer"),
    ]
    assert (b"www-authenticate", b"Bearer") not in error_headers(
        HttpError(403, "PermissionDenied", "role too low"), "r4"
    )


def test_error_response_is_a_complete_starlette_response() -> None:
    response = error_response(
        NotFound("no model 'm'"), "r5", "predict", log, "here", [(b"x-shipyard-version", b"none")]
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "r5"
    assert response.headers["x-shipyard-version"] == "none"
    assert orjson.loads(response.body) == {
        "error": "NotFound",
        "message": "no model 'm'",
        "request_id": "r5",
    }
