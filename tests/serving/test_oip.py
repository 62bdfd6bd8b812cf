"""The Open Inference Protocol v2 routes, driven by Triton's own HTTP client (tritonclient)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from shipyard.serving import ModelRunner

from .conftest import rows_of


@pytest.fixture()
def triton_client(server: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def demo_inputs(runner: ModelRunner, rows: int, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, values in rows_of(runner, rows)["tumours"].items():
        tensor = triton.InferInput(name, [rows], "FP64")
        tensor.set_data_from_numpy(np.asarray(values, dtype=np.float64), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_server_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.get_server_metadata()["name"] == "shipyard"
    assert triton_client.is_model_ready("tumour_triage")
    assert triton_client.is_model_ready("tumour_triage", "1.0.0")
    assert not triton_client.is_model_ready("nope")


def test_model_metadata_lists_inputs_and_outputs_with_datatypes_and_shapes(
    triton_client: triton.InferenceServerClient,
) -> None:
    metadata = triton_client.get_model_metadata("tensor_score")
    assert metadata["name"] == "tensor_score"
    assert metadata["versions"] == ["1.0.0"]
    assert metadata["inputs"] == [
        {"name": "a", "datatype": "BYTES", "shape": [-1]},
        {"name": "b", "datatype": "INT64", "shape": [-1]},
        {"name": "c", "datatype": "FP64", "shape": [-1, -1]},
    ]
    assert metadata["outputs"] == [
        {"name": "score", "datatype": "FP64", "shape": [-1]},
        {"name": "shout", "datatype": "BYTES", "shape": [-1]},
    ]
    versioned = triton_client.get_model_metadata("tumour_triage", "1.0.0")
    assert {"name": "mean_radius", "datatype": "FP64", "shape": [-1]} in versioned["inputs"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_gives_the_bundles_answer(
    triton_client: triton.InferenceServerClient, demo_runner: ModelRunner, binary: bool
) -> None:
    expected = demo_runner.executor.run_dict(rows_of(demo_runner, 3))
    outputs = [
        triton.InferRequestedOutput("p_malignant", binary_data=binary),
        triton.InferRequestedOutput("decision", binary_data=binary),
    ]
    result = triton_client.infer(
        "tumour_triage", demo_inputs(demo_runner, 3, binary), outputs=outputs, request_id="42"
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "tumour_triage",
        "1.0.0",
        "42",
    )
    probability = result.as_numpy("p_malignant")
    assert probability.dtype == np.float64 and probability.shape == (3,)
    np.testing.assert_allclose(probability, expected["p_malignant"]["values"])
    decisions = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("decision")]
    assert decisions == expected["decision"]["values"]


def test_infer_without_requested_outputs_answers_every_output_in_binary(
    triton_client: triton.InferenceServerClient, demo_runner: ModelRunner
) -> None:
    result = triton_client.infer("tumour_triage", demo_inputs(demo_runner, 2, True))
    assert result.as_numpy("p_malignant").shape == (2,)
    assert result.get_output("decision")["datatype"] == "BYTES"


def test_infer_on_a_version_route_with_ints_strings_and_lists(
    triton_client: triton.InferenceServerClient,
) -> None:
    a = triton.InferInput("a", [2], "BYTES")
    a.set_data_from_numpy(np.array([b"x", b"y"], dtype=object))
    b = triton.InferInput("b", [2, 1], "INT64")
    b.set_data_from_numpy(np.array([[1], [2]], dtype=np.int64), binary_data=False)
    c = triton.InferInput("c", [2, 3], "FP64")
    c.set_data_from_numpy(np.arange(6, dtype=np.float64).reshape(2, 3))
    result = triton_client.infer("tensor_score", [a, b, c], model_version="1.0.0")
    np.testing.assert_allclose(result.as_numpy("score"), [4.0, 14.0])
    assert [v.decode() for v in result.as_numpy("shout")] == ["X", "Y"]


def test_unknown_models_versions_and_outputs_are_errors_the_client_reports(
    triton_client: triton.InferenceServerClient, demo_runner: ModelRunner
) -> None:
    inputs = demo_inputs(demo_runner, 1, False)
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        triton_client.infer("nope", inputs)
    with pytest.raises(InferenceServerException, match="no version '9.9'"):
        triton_client.infer("tumour_triage", inputs, model_version="9.9")
    with pytest.raises(InferenceServerException, match="unknown output 'zzz'"):
        triton_client.infer("tumour_triage", inputs, outputs=[triton.InferRequestedOutput("zzz")])


def test_an_unknown_model_or_version_in_the_metadata_routes_is_a_protocol_404(
    client: httpx.Client,
) -> None:
    for path in ("/v2/models/nope", "/v2/models/tumour_triage/versions/9.9/ready", "/v2/nope"):
        response = client.get(path, headers={"X-Request-Id": "meta-1"})
        assert response.status_code == 404, path
        body = response.json()
        assert (body["kind"], body["request_id"]) == ("NotFound", "meta-1"), path
        assert response.headers.get_list("x-request-id") == ["meta-1"], path
        assert response.headers["x-shipyard-version"] == "none"
    assert "no model 'nope' here" in client.get("/v2/models/nope").json()["error"]
    versions = client.get("/v2/models/tumour_triage/versions/9.9").json()["error"]
    assert "has no version '9.9' loaded (versions: 1.0.0)" in versions


def test_oip_errors_follow_the_protocol(client: httpx.Client) -> None:
    wrong_type = client.post(
        "/v2/models/frame_total/infer",
        json={"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert wrong_type.status_code == 422
    assert "does not fit a float64 column" in wrong_type.json()["error"]
    bad_shape = client.post(
        "/v2/models/frame_total/infer",
        json={"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
    )
    assert bad_shape.status_code == 400
    assert "needs 2 values" in bad_shape.json()["error"]
    missing = client.post(
        "/v2/models/frame_total/infer",
        json={"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
    )
    assert missing.status_code == 422
    assert missing.json()["column"] == "b"
    assert client.post("/v2/models/frame_total/infer", content=b"[").status_code == 400


def test_an_unknown_binary_input_is_skipped_without_shifting_the_others(
    triton_client: triton.InferenceServerClient,
) -> None:
    tensors = []
    for name, values in (("unused", [9.0, 9.0, 9.0]), ("a", [1.0]), ("b", [2.0]), ("c", [3.0])):
        tensor = triton.InferInput(name, [len(values)], "FP64")
        tensor.set_data_from_numpy(np.asarray(values))  # binary
        tensors.append(tensor)
    result = triton_client.infer("frame_total", tensors)
    assert result.as_numpy("total").tolist() == [6.0]


def _infer_body(**change: Any) -> dict[str, Any]:
    """A valid request for frame_total (columns a, b, c), with ``change`` applied to it."""
    inputs = [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in "abc"]
    return {"inputs": inputs, **change}


def _with_input(name: str, **change: Any) -> list[dict[str, Any]]:
    inputs = _infer_body()["inputs"]
    for tensor in inputs:
        if tensor["name"] == name:
            tensor.update(change)
    return inputs


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_infer_body(parameters=5), "the request: 'parameters' must be an object"),
        (_infer_body(parameters=[]), "the request: 'parameters' must be an object"),
        (
            _infer_body(inputs=_with_input("a", parameters="x")),
            "input 'a': 'parameters' must be an object",
        ),
        (
            _infer_body(inputs=[*_infer_body()["inputs"], {"name": "extra", "parameters": 1}]),
            "input 'extra': 'parameters' must be an object",
        ),
        (
            _infer_body(outputs=[{"name": "total", "parameters": [True]}]),
            "output 'total': 'parameters' must be an object",
        ),
        (_infer_body(outputs={"name": "total"}), "'outputs' must be a list"),
        (_infer_body(id={"a": 1}), "'id' must be a string"),
        (
            _infer_body(inputs=_with_input("a", shape=[2, 1], data=[[1.0], [2.0, 3.0]])),
            "input 'a': nested 'data' does not match shape [2, 1]",
        ),
        (
            _infer_body(inputs=_with_input("a", shape=[True], data=[1.0])),
            "input 'a': 'shape' must be a list of sizes",
        ),
        (
            _infer_body(inputs=[*_infer_body()["inputs"], _infer_body()["inputs"][0]]),
            "input 'a' is given twice",
        ),
    ],
    ids=[
        "parameters-number",
        "parameters-list",
        "input-parameters",
        "ignored-input-parameters",
        "output-parameters",
        "outputs-object",
        "id-object",
        "ragged-nested-data",
        "boolean-shape",
        "input-twice",
    ],
)
def test_a_malformed_inference_request_is_a_400_naming_the_field(
    client: httpx.Client, body: dict[str, Any], says: str
) -> None:
    response = client.post("/v2/models/frame_total/infer", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["kind"] == "BadRequest"
    assert says in response.json()["error"]


def test_inputs_of_different_lengths_are_a_422_naming_the_column(client: httpx.Client) -> None:
    inputs = _with_input("b", shape=[2], data=[1.0, 2.0])
    response = client.post("/v2/models/frame_total/infer", json={"inputs": inputs})
    assert response.status_code == 422
    assert (response.json()["column"], response.json()["table"]) == ("b", "frame")
    assert "has 2 rows" in response.json()["error"]


def test_a_datatype_that_is_not_a_name_is_a_422_naming_the_input(client: httpx.Client) -> None:
    inputs = _with_input("a", datatype=["FP64"])
    response = client.post("/v2/models/frame_total/infer", json={"inputs": inputs})
    assert response.status_code == 422
    assert response.json()["column"] == "a"


def _binary_request(
    client: httpx.Client, tensor: dict[str, Any], blob: bytes, model: str = "frame_total"
) -> httpx.Response:
    others = [t for t in _infer_body()["inputs"] if t["name"] != tensor["name"]]
    head = orjson.dumps({"inputs": [tensor, *others]})
    return client.post(
        f"/v2/models/{model}/infer",
        content=head + blob,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        },
    )


@pytest.mark.parametrize(
    ("size", "blob", "says"),
    [
        ("8", b"\0" * 8, "'binary_data_size' must be a whole number of bytes"),
        (1.5, b"\0" * 8, "'binary_data_size' must be a whole number of bytes"),
        (-1, b"\0" * 8, "'binary_data_size' must be a whole number of bytes"),
        (True, b"\0" * 8, "'binary_data_size' must be a whole number of bytes"),
        (7, b"\0" * 7, "shape [1] of FP64 needs 8 bytes, binary_data_size is 7"),
        (16, b"\0" * 16, "shape [1] of FP64 needs 8 bytes, binary_data_size is 16"),
        (8, b"\0" * 4, "binary data is shorter than declared"),
    ],
    ids=["text", "fraction", "negative", "boolean", "7-bytes", "two-values", "short-body"],
)
def test_binary_data_that_does_not_fit_its_declaration_is_a_400_naming_the_input(
    client: httpx.Client, size: Any, blob: bytes, says: str
) -> None:
    tensor = {
        "name": "a",
        "shape": [1],
        "datatype": "FP64",
        "parameters": {"binary_data_size": size},
    }
    response = _binary_request(client, tensor, blob)
    assert response.status_code == 400, response.text
    assert f"input 'a': {says}" in response.json()["error"]


def test_a_bytes_element_running_past_its_data_is_a_400(client: httpx.Client) -> None:
    tensor = {"name": "a", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
    blob = struct.pack("<I", 9) + b"xy"  # says 9 bytes follow; 2 do
    response = _binary_request(client, tensor, blob, model="tensor_score")
    assert response.status_code == 400
    assert "input 'a': malformed BYTES tensor" in response.json()["error"]


def test_an_ignored_binary_input_with_a_bad_size_is_still_a_400(client: httpx.Client) -> None:
    tensor = {"name": "extra", "shape": [1], "datatype": "FP64"}
    tensor["parameters"] = {"binary_data_size": "lots"}
    response = _binary_request(client, tensor, b"")
    assert response.status_code == 400
    assert "input 'extra': 'binary_data_size'" in response.json()["error"]


def test_zero_rows_infer_to_zero_rows_of_each_output(
    client: httpx.Client, demo_runner: ModelRunner
) -> None:
    inputs = [
        {"name": n, "shape": [0], "datatype": "FP64", "data": []}
        for n in rows_of(demo_runner)["tumours"]
    ]
    response = client.post("/v2/models/tumour_triage/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["p_malignant"] == {
        "name": "p_malignant",
        "datatype": "FP64",
        "shape": [0],
        "data": [],
    }
    assert outputs["decision"]["shape"] == [0]


def test_a_multiclass_output_names_its_classes_in_both_formats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    import shipyard as sy
    from shipyard.serving import ModelRunner, ServingApp, bundle_table

    from .conftest import guarded_server, predict_path

    wine = load_wine()
    columns = [f"x{i}" for i in range(wine.data.shape[1])]
    fitted = LogisticRegression(max_iter=5000).fit(wine.data, wine.target)
    pipeline = sy.Pipeline(
        "cultivar",
        "1.0.0",
        inputs=[sy.Table("wines", [sy.Column(c, "float64") for c in columns])],
        nodes=[sy.model("p", fitted, features=columns)],
    )
    runner = ModelRunner.from_bundle(pipeline.export(tmp_path, backend="native"))
    row = {c: [float(v)] for c, v in zip(columns, wine.data[0], strict=True)}
    with guarded_server(ServingApp(bundle_table([runner]), seed=1)) as base:
        typed = httpx.post(base + predict_path("cultivar"), json={"wines": row}, timeout=30)
        assert typed.json()["p"]["classes"] == [0, 1, 2]
        inputs = [{"name": c, "datatype": "FP64", "shape": [1], "data": row[c]} for c in columns]
        infer = httpx.post(base + "/v2/models/cultivar/infer", json={"inputs": inputs}, timeout=30)
        assert infer.status_code == 200, infer.text
        [output] = infer.json()["outputs"]
        assert output["parameters"]["classes"] == [0, 1, 2] and output["shape"] == [1, 3]


def name_length(name):  # type: ignore[no-untyped-def]
    """A feature of the test below: the length of a nullable text (0 for null)."""
    import numpy as np

    return np.array([0.0 if v is None else float(len(v)) for v in name])


def test_a_null_in_a_bytes_tensor_is_a_null_of_a_nullable_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shipyard as sy
    from shipyard.serving import ModelRunner, ServingApp, bundle_table

    from .conftest import guarded_server

    table = sy.Table("people", [sy.Column("name", "string", nullable=True)])
    node = sy.feature(name_length, inputs={"name": "people.name"}, dtype="float64")
    pipeline = sy.Pipeline("nulls", "1.0.0", inputs=[table], nodes=[node])
    runner = ModelRunner.from_bundle(pipeline.export(tmp_path))
    body = {"inputs": [{"name": "name", "datatype": "BYTES", "shape": [2], "data": ["ab", None]}]}
    with guarded_server(ServingApp(bundle_table([runner]), seed=1)) as base:
        answer = httpx.post(base + "/v2/models/nulls/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [2.0, 0.0]  # output named name_length
