"""The Open Inference Protocol v2 routes, driven by Triton's own HTTP client (tritonclient)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
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
