"""The predict route over real HTTP: inputs, answers, headers, and every bad-input status."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

import shipyard.serving
from shipyard.serving import KeyRing, ModelRunner, ServingApp, bundle_table

from .conftest import guarded_server, live_server, predict_path, rows_of

DEMO = predict_path("tumour_triage")


def test_the_public_surface() -> None:
    assert sorted(shipyard.serving.__all__) == [
        "AppMount",
        "BakedRegistry",
        "CallRecords",
        "Capture",
        "CaptureRecord",
        "CaptureSink",
        "ComponentLogs",
        "EnvironmentLoader",
        "Follower",
        "KeyRing",
        "LambdaHandler",
        "Metrics",
        "ModelRoute",
        "ModelRunner",
        "ParquetFolder",
        "RouteTable",
        "ServeOptions",
        "ServingApp",
        "Shadow",
        "build_app",
        "bundle_table",
        "check_pins",
        "default_log_dir",
        "default_workers",
        "read_log",
        "run",
    ]


def test_one_row_in_the_dict_format_gets_the_bundles_own_answer(
    client: httpx.Client, demo_runner: ModelRunner
) -> None:
    rows = rows_of(demo_runner, 3)
    expected = demo_runner.executor.run_dict(rows)
    response = client.post(DEMO, json=rows)
    assert response.status_code == 200
    assert response.json() == expected
    assert response.headers["x-shipyard-version"] == "1.0.0"
    assert response.headers["x-request-id"]
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("form", ["typed", "bare", "records", "with_extra_column"])
def test_every_form_of_the_dict_format_gives_the_same_answer(
    client: httpx.Client, demo_runner: ModelRunner, form: str
) -> None:
    columns = rows_of(demo_runner, 2)["tumours"]
    body: Any = {
        "typed": demo_runner.example_input,
        "bare": columns,
        "records": {"tumours": [{k: v[i] for k, v in columns.items()} for i in range(2)]},
        "with_extra_column": {"tumours": {**columns, "patient_id": ["a", "b"]}},
    }[form]
    answer = client.post(DEMO, json=body).json()
    same_rows = demo_runner.example_input if form == "typed" else rows_of(demo_runner, 2)
    assert answer == demo_runner.executor.run_dict(same_rows)


def test_outputs_query_returns_chosen_nodes(client: httpx.Client, demo_runner: ModelRunner) -> None:
    answer = client.post(DEMO + "?outputs=compactness_ratio", json=rows_of(demo_runner)).json()
    assert list(answer) == ["compactness_ratio"]
    unknown = client.post(DEMO + "?outputs=nope", json=rows_of(demo_runner))
    assert unknown.status_code == 400
    assert "unknown output 'nope'" in unknown.json()["message"]


def test_a_request_id_sent_by_the_caller_is_kept(
    client: httpx.Client, demo_runner: ModelRunner
) -> None:
    response = client.post(DEMO, json=rows_of(demo_runner), headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    odd = client.post(DEMO, json=rows_of(demo_runner), headers={"X-Request-Id": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc"


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(DEMO, content=b'{"tumours": ')
    assert response.status_code == 400
    assert response.json()["error"] == "MalformedJSON"
    assert response.headers["x-request-id"] == response.json()["request_id"]


def test_a_body_over_the_limit_is_413_by_content_length_and_by_streamed_bytes(
    demo_runner: ModelRunner,
) -> None:
    app = ServingApp(bundle_table([demo_runner]), max_body_bytes=1000)
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        declared = client.post(DEMO, content=b"x" * 1001)
        assert declared.status_code == 413
        assert declared.json()["error"] == "TooLarge"

        def chunks() -> Any:  # no Content-Length: chunked transfer encoding
            for _ in range(20):
                yield b" " * 100

        streamed = client.post(DEMO, content=chunks())
        assert streamed.status_code == 413
        assert client.post(DEMO, json=rows_of(demo_runner)).status_code == 200


@pytest.mark.parametrize(
    ("change", "kind", "column", "row"),
    [
        ({"mean_radius": [14.0, -1.0]}, "OutOfRange", "mean_radius", 1),
        ({"mean_radius": [14.0, "big"]}, "WrongType", "mean_radius", 1),
        ({"mean_radius": [True, 14.0]}, "WrongType", "mean_radius", 0),
        ({"mean_radius": [14.0, None]}, "NullValue", "mean_radius", 1),
    ],
)
def test_schema_violations_are_422_naming_table_column_and_row(
    client: httpx.Client, demo_runner: ModelRunner, change: dict, kind: str, column: str, row: int
) -> None:
    rows = rows_of(demo_runner, 2)
    rows["tumours"].update(change)
    response = client.post(DEMO, json=rows)
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["table"], body["column"], body["row"]) == (
        kind,
        "tumours",
        column,
        row,
    )
    assert "table 'tumours'" in body["message"]


def test_a_missing_column_is_422_naming_it(client: httpx.Client, demo_runner: ModelRunner) -> None:
    rows = rows_of(demo_runner)
    del rows["tumours"]["worst_area"]
    body = client.post(DEMO, json=rows).json()
    assert (body["error"], body["column"]) == ("MissingColumn", "worst_area")


def test_unknown_model_project_or_environment_is_404(client: httpx.Client) -> None:
    unknown = client.post(predict_path("nope"), json={})
    assert unknown.status_code == 404
    assert "models: fragile, frame_total, tensor_score, tumour_triage" in unknown.json()["message"]
    assert unknown.headers["x-shipyard-version"] == "none"
    other_env = client.post(predict_path("tumour_triage", env="production"), json={})
    assert other_env.status_code == 404
    assert client.get("/no/such/route").status_code == 404


def test_an_exception_inside_a_model_is_500_with_a_request_id_and_no_details(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="shipyard.serving"):
        response = client.post(predict_path("fragile"), json={"t": {"x": [1.0, 666.0]}})
    assert response.status_code == 500
    body = response.json()
    request_id = response.headers["x-request-id"]
    assert body["request_id"] == request_id
    assert request_id in body["message"]
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "secret internal detail" in caplog.text


def test_health_and_metrics(client: httpx.Client, demo_runner: ModelRunner) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["models"]["tumour_triage"] == ["1.0.0"]
    assert health.headers["x-request-id"]
    client.post(DEMO, json=rows_of(demo_runner))
    client.post(DEMO, content=b"{")
    client.post(predict_path("fragile"), json={"t": {"x": [666.0]}})
    text = client.get("/metrics").text
    labels = 'model="tumour_triage",route="predict",status="200",version="1.0.0"'
    assert f"shipyard_requests_total{{{labels}}} 1.0" in text
    assert 'status="400"' in text
    assert (
        'shipyard_request_errors_total{kind="ModelError",model="fragile",version="1.0.0"} 1.0'
        in text
    )
    assert "shipyard_request_duration_seconds_bucket" in text
    assert (
        'shipyard_model_loaded{digest="",model="tumour_triage",role="live",version="1.0.0"} 1.0'
        in text
    )


def test_openapi_describes_each_models_inputs_and_docs_render(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    validate(document)  # a valid OpenAPI 3.1 document
    schemas = document["components"]["schemas"]
    post = document["paths"][DEMO]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    dict_format = schema["oneOf"][0]
    columns = schemas["tumour_triage.tumours.columns"]
    assert dict_format["properties"]["tumours"]["anyOf"][0] == {
        "$ref": "#/components/schemas/tumour_triage.tumours.columns"
    }
    assert "mean_radius" in columns["required"]
    radius = columns["properties"]["mean_radius"]["anyOf"][0]
    assert radius == {"type": "array", "items": {"type": "number", "minimum": 0.0}}
    titles = [form["title"] for form in schema["oneOf"]]
    assert "MLflow dataframe_split" in titles and "one table as records, no table level" in titles
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert examples["dict"]["value"]["tumours"]["mean_radius"]["type"] == "float64"
    assert examples["records"]["value"][0]["mean_radius"] > 0
    assert set(post["responses"]) >= {"200", "400", "404", "413", "422"}
    assert "401" not in post["responses"] and post["security"] == []  # no keys: open
    outputs = post["parameters"][0]["schema"]["pattern"]
    assert re.fullmatch(outputs, "p_malignant,decision") and not re.fullmatch(outputs, "nope")
    tensors = schemas["tensor_score.tensors.columns"]["properties"]
    assert tensors["c"]["anyOf"][0]["items"] == {"type": "array", "items": {"type": "number"}}
    assert tensors["b"]["anyOf"][0]["items"]["maximum"] == 2**63 - 1
    infer = schemas["tensor_score.infer"]
    assert infer["required"] == ["inputs"]
    names = [
        t["properties"]["name"]["const"] for t in infer["properties"]["inputs"]["items"]["anyOf"]
    ]
    assert names == ["a", "b", "c"]
    model = document["paths"]["/v2/models/{model}"]["get"]["parameters"][0]["schema"]
    assert model["enum"] == ["fragile", "frame_total", "tensor_score", "tumour_triage"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_openapi_of_an_environment_with_keys_asks_for_one(demo_runner: ModelRunner) -> None:
    app = ServingApp(bundle_table([demo_runner]), keys=KeyRing.from_keys(["secret"]))
    with live_server(app) as base:
        document = httpx.get(f"{base}/openapi.json").json()
    post = document["paths"][DEMO]["post"]
    assert post["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in post["responses"]


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("columns", {"p_malignant": {"type": "float64", "values": []}}),
        ("records", {"p_malignant": {"type": "float64", "values": []}}),
        ("split", {"predictions": []}),
        ("dataframe_records", {"predictions": []}),
    ],
)
def test_zero_rows_get_zero_rows_of_each_output(
    client: httpx.Client, demo_runner: ModelRunner, body: str, answer: dict[str, Any]
) -> None:
    names = list(rows_of(demo_runner)["tumours"])
    request = {  # {"tumours": []} once answered 422 "column 'mean_radius': ... missing"
        "columns": {"tumours": {name: [] for name in names}},
        "records": {"tumours": []},
        "split": {"dataframe_split": {"columns": names, "data": []}},
        "dataframe_records": {"dataframe_records": []},
    }[body]
    response = client.post(DEMO, json=request)
    assert response.status_code == 200, response.text
    assert response.json().items() >= answer.items()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", DEMO, "POST"),
        ("PUT", "/v2/models/tumour_triage/infer", "POST"),
        ("GET", "/v2/models/tumour_triage/versions/1.0.0/infer", "POST"),
        ("DELETE", "/health", "GET, HEAD"),
        ("POST", "/v2/models/tumour_triage", "GET, HEAD"),
        ("PATCH", "/metrics", "GET, HEAD"),
    ],
)
def test_a_known_path_asked_with_another_method_is_a_json_405_with_allow(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers={"X-Request-Id": "m-1"})
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "m-1"
    body = response.json()
    kind = body["kind"] if path.startswith("/v2") else body["error"]
    assert (kind, body["request_id"]) == ("MethodNotAllowed", "m-1")
    assert f"{method} is not allowed on {path}" in str(body)


def test_big_requests_run_off_the_event_loop_and_get_the_same_answer(
    client: httpx.Client, demo_runner: ModelRunner
) -> None:
    rows = {"tumours": {k: v * 40 for k, v in rows_of(demo_runner, 5)["tumours"].items()}}
    answer = client.post(DEMO, json=rows).json()
    assert answer == demo_runner.executor.run_dict(rows)
    assert len(answer["decision"]["values"]) == 200


def test_health_says_an_environment_emptied_under_it_is_unhealthy(
    demo_runner: ModelRunner,
) -> None:
    app = ServingApp(bundle_table([demo_runner]), seed=1)
    with guarded_server(app) as base:
        assert httpx.get(base + "/health", timeout=30).json()["status"] == "ok"
        app.swap(bundle_table([]))  # what a rollback to a revision with no components loads
        emptied = httpx.get(base + "/health", timeout=30)
        assert emptied.status_code == 503
        assert emptied.json()["status"] == "no_models" and emptied.json()["models"] == {}
        ready = httpx.get(base + "/v2/health/ready", timeout=30)
        assert ready.status_code == 503
    never = ServingApp(bundle_table([]), seed=1)
    with guarded_server(never) as base:  # an environment that has held nothing yet
        assert httpx.get(base + "/health", timeout=30).status_code == 200


def test_strict_inputs_refuses_an_undeclared_column_naming_it(demo_runner: ModelRunner) -> None:
    rows = rows_of(demo_runner, 2)
    table = next(iter(rows))
    extra = {table: {**rows[table], "patient_name": ["a", "b"]}}
    lenient = ServingApp(bundle_table([demo_runner]), seed=1)
    strict = ServingApp(bundle_table([demo_runner]), seed=1, strict=True)
    path = predict_path(demo_runner.model)
    with guarded_server(lenient) as base:
        assert httpx.post(base + path, json=extra, timeout=30).status_code == 200
    with guarded_server(strict) as base:
        refused = httpx.post(base + path, json=extra, timeout=30)
        assert refused.status_code == 422
        assert "unknown column(s) patient_name" in refused.json()["message"]
        assert httpx.post(base + path, json=rows, timeout=30).status_code == 200
